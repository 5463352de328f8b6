//! Deployment arithmetic and bookkeeping, as kube's `pkg/controller/deployment/util/
//! deployment_util.go` and the ReplicaSet sort orders of `pkg/controller/controller_utils.go`
//! define them. Pure: no I/O, no clock (callers pass `now`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetCondition,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// The revision of a Deployment's rollout a ReplicaSet serves (and the Deployment's latest).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet served (it was rolled back to).
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` of the Deployment when the ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// The label that keeps the ReplicaSets of one Deployment apart
/// (`apps.DefaultDeploymentUniqueLabelKey`).
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// kubectl's annotation, never copied to ReplicaSets.
pub const LAST_APPLIED_CONFIG_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// extensions/v1beta1's rollback request, never copied to ReplicaSets.
pub const DEPRECATED_ROLLBACK_TO_ANNOTATION: &str = "deprecated.deployment.rollback.to";
/// The revision history annotation is cut to this many characters (kube's
/// `maxRevHistoryLengthInChars`).
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

pub const STRATEGY_ROLLING_UPDATE: &str = "RollingUpdate";
pub const STRATEGY_RECREATE: &str = "Recreate";

pub const CONDITION_PROGRESSING: &str = "Progressing";
pub const CONDITION_AVAILABLE: &str = "Available";
pub const CONDITION_REPLICA_FAILURE: &str = "ReplicaFailure";

pub const STATUS_TRUE: &str = "True";
pub const STATUS_FALSE: &str = "False";
pub const STATUS_UNKNOWN: &str = "Unknown";

/// Condition reasons (`deployment_util.go`).
pub mod reason {
    /// Progressing: one of the ReplicaSets was updated as part of the rollout.
    pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
    /// Progressing (False): the new ReplicaSet could not be created.
    pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
    /// Progressing: a new ReplicaSet was created.
    pub const NEW_REPLICA_SET: &str = "NewReplicaSetCreated";
    /// Progressing: an existing ReplicaSet was found to be the new one.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// Progressing: the rollout completed.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// Progressing (False): no progress within `progressDeadlineSeconds`.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// Progressing (Unknown): paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// Progressing (Unknown): resumed.
    pub const RESUMED: &str = "DeploymentResumed";
    /// Available (True).
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Available (False).
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

// ------------------------------------------------------------------------------------------------
// Field access with apps/v1 defaults
// ------------------------------------------------------------------------------------------------

/// `spec.replicas` (apps/v1 defaults it to 1).
pub fn deployment_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet (apps/v1 defaults it to 1).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn set_rs_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn rs_min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

pub fn deployment_min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

pub fn rs_template(rs: &ReplicaSet) -> Option<&PodTemplateSpec> {
    rs.spec.as_ref().and_then(|s| s.template.as_ref())
}

pub fn annotations(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    meta.annotations.as_ref().unwrap_or(&EMPTY)
}

/// The strategy type; apps/v1 defaults it to RollingUpdate.
pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or(STRATEGY_ROLLING_UPDATE)
}

pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == STRATEGY_ROLLING_UPDATE
}

pub fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// `HasProgressDeadline`: set and not `MaxInt32`.
pub fn has_progress_deadline(d: &Deployment) -> bool {
    progress_deadline_seconds(d).is_some_and(|s| s != i32::MAX)
}

pub fn progress_deadline_seconds(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds)
}

/// `HasRevisionHistoryLimit`: set and not `MaxInt32` (which keeps every revision).
pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .filter(|l| *l != i32::MAX)
}

// ------------------------------------------------------------------------------------------------
// maxSurge / maxUnavailable
// ------------------------------------------------------------------------------------------------

/// An int, or a percentage of `total` rounded up or down (`GetScaledValueFromIntOrPercent`).
/// A string that is not `<int>%` is an error, as in kube; so is a negative result (kube's
/// validation rejects those before they reach the controller).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    let value = match v {
        IntOrString::Int(i) => i64::from(*i),
        IntOrString::String(s) => {
            let Some(number) = s.strip_suffix('%') else {
                return Err(format!(
                    "invalid value for IntOrString: invalid type: string is not a percentage: {s:?}"
                ));
            };
            let pct: i64 = number
                .parse()
                .map_err(|e| format!("invalid value for IntOrString: invalid value {s:?}: {e}"))?;
            let product = pct * i64::from(total);
            if round_up {
                -((-product).div_euclid(100))
            } else {
                product.div_euclid(100)
            }
        }
    };
    if value < 0 {
        return Err(format!("must be greater than or equal to 0, got {value}"));
    }
    Ok(i32::try_from(value).unwrap_or(i32::MAX))
}

/// `ResolveFenceposts`: maxSurge rounds up, maxUnavailable rounds down; when both come to zero,
/// maxUnavailable is 1 (surge might be blocked by quota, so some progress must come from
/// taking pods down). An absent value counts as 0.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)
        .map_err(|e| format!("spec.strategy.rollingUpdate.maxSurge: {e}"))?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)
        .map_err(|e| format!("spec.strategy.rollingUpdate.maxUnavailable: {e}"))?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// The RollingUpdate parameters, with apps/v1's 25% defaults for a missing `rollingUpdate`.
fn rolling_params(d: &Deployment) -> (IntOrString, IntOrString) {
    let quarter = || IntOrString::String("25%".into());
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    match ru {
        None => (quarter(), quarter()),
        Some(ru) => (
            ru.max_surge.clone().unwrap_or(IntOrString::Int(0)),
            ru.max_unavailable.clone().unwrap_or(IntOrString::Int(0)),
        ),
    }
}

/// The Deployment's fenceposts at its current size; an error when they cannot be resolved
/// (kube's validation would have refused the object).
pub fn fenceposts(d: &Deployment) -> Result<(i32, i32), String> {
    let (surge, unavailable) = rolling_params(d);
    resolve_fenceposts(Some(&surge), Some(&unavailable), deployment_replicas(d))
}

/// `MaxSurge`: 0 for Recreate (and, as in kube, when the values do not resolve).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    fenceposts(d).map_or(0, |(s, _)| s)
}

/// `MaxUnavailable`: 0 for Recreate or zero replicas, never more than the replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = deployment_replicas(d);
    if !is_rolling_update(d) || replicas == 0 {
        return 0;
    }
    fenceposts(d).map_or(0, |(_, u)| u).min(replicas)
}

/// `NewRSNewReplicas`: how many replicas the new ReplicaSet should have now. RollingUpdate:
/// grow it within `replicas + maxSurge` pods in total and never beyond `replicas`. Recreate:
/// all of them (the old ones are gone by the time this is asked).
pub fn new_rs_new_replicas<'a>(
    d: &Deployment,
    all: impl IntoIterator<Item = &'a ReplicaSet>,
    new_rs: &ReplicaSet,
) -> Result<i32, String> {
    let replicas = deployment_replicas(d);
    match strategy_type(d) {
        STRATEGY_ROLLING_UPDATE => {
            let (surge, _) = rolling_params(d);
            let surge = scaled_value(&surge, replicas, true)?;
            let current: i32 = all.into_iter().map(rs_replicas).sum();
            let max_total = replicas.saturating_add(surge);
            if current >= max_total {
                return Ok(rs_replicas(new_rs));
            }
            let up = (max_total - current).min(replicas - rs_replicas(new_rs));
            Ok(rs_replicas(new_rs) + up)
        }
        STRATEGY_RECREATE => Ok(replicas),
        other => Err(format!("deployment type {other} isn't supported")),
    }
}

// ------------------------------------------------------------------------------------------------
// Replica annotations and proportional scaling
// ------------------------------------------------------------------------------------------------

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotations(&rs.metadata).get(key)?.parse().ok()
}

/// `GetDesiredReplicasAnnotation`.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
}

/// `SetReplicasAnnotations`; true when something changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut updated = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max),
    ] {
        let value = value.to_string();
        if ann.get(key) != Some(&value) {
            ann.insert(key.to_string(), value);
            updated = true;
        }
    }
    updated
}

/// `ReplicasAnnotationsNeedUpdate`.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    let ann = annotations(&rs.metadata);
    ann.get(DESIRED_REPLICAS_ANNOTATION) != Some(&desired.to_string())
        || ann.get(MAX_REPLICAS_ANNOTATION) != Some(&max.to_string())
}

/// Go's `integer.RoundToInt32`: halves away from zero.
fn round_to_i32(a: f64) -> i32 {
    if a < 0.0 {
        (a - 0.5) as i32
    } else {
        (a + 0.5) as i32
    }
}

/// `getReplicaSetFraction`: the change that keeps this ReplicaSet's share of the Deployment
/// when the Deployment's maximum size goes from the `max-replicas` it was scaled for to
/// `replicas + maxSurge` now.
pub fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let replicas = deployment_replicas(d);
    if replicas == 0 {
        return -rs_replicas(rs);
    }
    let max_now = i64::from(replicas) + i64::from(max_surge(d));
    let max_before = match int_annotation(rs, MAX_REPLICAS_ANNOTATION) {
        Some(m) if m != 0 => m,
        // Missing or tampered with: fall back to the Deployment's current size (kube does; the
        // min/max in `get_proportion` keep the result within bounds).
        _ => d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
    };
    if max_before == 0 {
        return 0;
    }
    let size = (i64::from(rs_replicas(rs)) * max_now) as f64 / f64::from(max_before);
    round_to_i32(size) - rs_replicas(rs)
}

/// `GetProportion`: this ReplicaSet's part of `to_add` (negative when scaling down), given
/// `added` so far; never beyond what is left to add or remove.
pub fn get_proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// `IsSaturated`: the ReplicaSet has, believes in, and runs available, all of the replicas.
pub fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let replicas = deployment_replicas(d);
    let Some(desired) = annotations(&rs.metadata)
        .get(DESIRED_REPLICAS_ANNOTATION)
        .and_then(|s| s.parse::<i32>().ok())
    else {
        return false;
    };
    rs_replicas(rs) == replicas && desired == replicas && rs_available(rs) == replicas
}

// ------------------------------------------------------------------------------------------------
// Revisions and annotations
// ------------------------------------------------------------------------------------------------

/// `Revision`: 0 without the annotation, an error when it is not an integer.
pub fn revision(meta: &ObjectMeta) -> Result<i64, std::num::ParseIntError> {
    match annotations(meta).get(REVISION_ANNOTATION) {
        None => Ok(0),
        Some(v) => v.parse(),
    }
}

/// `MaxRevision` (unparsable revisions are skipped).
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter()
        .filter_map(|rs| revision(&rs.metadata).ok())
        .fold(0, i64::max)
}

/// `LastRevision`: the second highest revision (what `rollout undo` goes back to).
pub fn last_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    let (mut max, mut second) = (0i64, 0i64);
    for v in rss.into_iter().filter_map(|rs| revision(&rs.metadata).ok()) {
        if v >= max {
            second = max;
            max = v;
        } else if v > second {
            second = v;
        }
    }
    second
}

/// Annotations a Deployment never hands down to its ReplicaSets (`annotationsToSkip`).
pub fn skip_copy_annotation(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_CONFIG_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | DEPRECATED_ROLLBACK_TO_ANNOTATION
    )
}

/// `copyDeploymentAnnotationsToReplicaSet`; true when the ReplicaSet's annotations changed.
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in annotations(&d.metadata) {
        if skip_copy_annotation(k) || ann.get(k) == Some(v) {
            continue;
        }
        ann.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// `SetNewReplicaSetAnnotations`: copies the Deployment's annotations, raises the ReplicaSet's
/// revision to `new_revision` when lower (remembering the old one in `revision-history`, cut to
/// `history_chars_max`), and for a ReplicaSet about to be created (`!exists`) sets the replica
/// annotations. True when the ReplicaSet's annotations changed.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
    history_chars_max: usize,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old_revision = ann.get(REVISION_ANNOTATION).cloned();
    let old = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            // kube logs and gives up on the revision (and reports no change).
            Err(_) => return false,
        },
    };
    let Ok(new) = new_revision.parse::<i64>() else {
        return false;
    };
    if old < new {
        ann.insert(REVISION_ANNOTATION.to_string(), new_revision.to_string());
        changed = true;
        // The ReplicaSet served an older revision and is now the new one: a rollback.
        if let Some(old_revision) = old_revision {
            let history = ann
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            if history.is_empty() {
                ann.insert(REVISION_HISTORY_ANNOTATION.to_string(), old_revision);
            } else {
                let entries: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old_revision.len() + 1;
                let mut start = 0;
                while total > history_chars_max && start < entries.len() {
                    total -= entries[start].len() + 1;
                    start += 1;
                }
                if total <= history_chars_max {
                    let mut kept: Vec<&str> = entries[start..].to_vec();
                    kept.push(&old_revision);
                    ann.insert(REVISION_HISTORY_ANNOTATION.to_string(), kept.join(","));
                }
            }
        }
    }
    if !exists {
        let replicas = deployment_replicas(d);
        if set_replicas_annotations(rs, replicas, replicas.saturating_add(max_surge(d))) {
            changed = true;
        }
    }
    changed
}

/// `SetDeploymentRevision`; true when it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let ann = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if ann.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
        return false;
    }
    ann.insert(REVISION_ANNOTATION.to_string(), revision.to_string());
    true
}

// ------------------------------------------------------------------------------------------------
// Templates and the pod-template-hash
// ------------------------------------------------------------------------------------------------

/// Drops nulls, empty maps and empty lists, recursively: kube's semantic equality treats nil and
/// empty alike, and k8s-openapi turns Go's zero structs into `None` or `Some(empty)` depending
/// on where they came from.
fn normalize(v: &mut Value) -> bool {
    match v {
        Value::Null => false,
        Value::Object(m) => {
            m.retain(|_, v| normalize(v));
            !m.is_empty()
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                if !normalize(x) {
                    *x = Value::Null;
                }
            }
            !a.is_empty()
        }
        _ => true,
    }
}

fn template_value_without_hash(t: &PodTemplateSpec) -> Value {
    let mut t = t.clone();
    if let Some(meta) = t.metadata.as_mut() {
        if let Some(labels) = meta.labels.as_mut() {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
    }
    let mut v = serde_json::to_value(&t).unwrap_or(Value::Null);
    normalize(&mut v);
    v
}

/// `EqualIgnoreHash`: the two templates are the same but for the `pod-template-hash` label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_value_without_hash(a) == template_value_without_hash(b)
}

/// kube's `rand.SafeEncodeString` alphabet: no vowels (no words), no 0/1/3 (no look-alikes).
pub(super) const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `SafeEncodeString`: each byte becomes `alphabet[byte % 27]`.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// 32-bit FNV-1a, the hash kube's `ComputeHash` uses.
pub(crate) fn fnv1a32(chunks: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for chunk in chunks {
        for b in *chunk {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// The `pod-template-hash` of a template: FNV-1a over the template (without the hash label) and
/// then `collisionCount` (little-endian u32, as kube), its decimal form safe-encoded.
///
/// kube hashes Go's `spew` dump of the template; this hashes its canonical JSON, so the value
/// is stable here but not equal to kube's for the same template.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(&template_value_without_hash(template)).unwrap_or_default();
    let collision = collision_count.map(|c| (c as u32).to_le_bytes());
    let hash = match &collision {
        Some(c) => fnv1a32(&[&bytes, c]),
        None => fnv1a32(&[&bytes]),
    };
    safe_encode(&hash.to_string())
}

// ------------------------------------------------------------------------------------------------
// Finding the new and old ReplicaSets; sort orders
// ------------------------------------------------------------------------------------------------

fn created(rs: &ReplicaSet) -> Option<DateTime<Utc>> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or("")
}

/// `ReplicaSetsByCreationTimestamp`: oldest first, then by name.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| name(a).cmp(name(b)))
}

/// `ReplicaSetsBySizeOlder`: largest first, then oldest first (scaling down).
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// `ReplicaSetsBySizeNewer`: largest first, then newest first (scaling up).
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// `ReplicaSetsByRevision`: lowest revision first, then oldest first. kube compares by creation
/// when either revision is unparsable; that is not a total order, so here an unparsable revision
/// counts as 0.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let rev = |rs: &ReplicaSet| revision(&rs.metadata).unwrap_or(0);
    rev(a).cmp(&rev(b)).then_with(|| by_creation(a, b))
}

/// `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the Deployment's.
pub fn find_new_replica_set(d: &Deployment, rss: &[ReplicaSet]) -> Option<usize> {
    let template = &d.spec.as_ref()?.template;
    let mut order: Vec<usize> = (0..rss.len()).collect();
    order.sort_by(|&a, &b| by_creation(&rss[a], &rss[b]));
    order
        .into_iter()
        .find(|&i| rs_template(&rss[i]).is_some_and(|t| equal_ignore_hash(t, template)))
}

// ------------------------------------------------------------------------------------------------
// Conditions
// ------------------------------------------------------------------------------------------------

/// `NewDeploymentCondition`, both times `now`.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// `GetDeploymentCondition`.
pub fn get_condition<'a>(
    status: Option<&'a DeploymentStatus>,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn condition_reason(c: &DeploymentCondition) -> &str {
    c.reason.as_deref().unwrap_or("")
}

/// `SetDeploymentCondition`: nothing when a condition of the type with the same status and
/// reason exists; else replaces it (keeping `lastTransitionTime` when the status is the same),
/// appended last.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(current) = conditions.iter().find(|c| c.type_ == condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != condition.type_);
    conditions.push(condition);
}

/// `RemoveDeploymentCondition`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// `ReplicaSetToDeploymentCondition`.
pub fn replica_set_to_deployment_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_transition_time: c.last_transition_time.clone(),
        last_update_time: c.last_transition_time.clone(),
    }
}

fn count(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// `DeploymentComplete`: every desired replica is updated and available, no old one is left,
/// and the controller has seen the latest spec.
pub fn deployment_complete(d: &Deployment, new: &DeploymentStatus) -> bool {
    let replicas = deployment_replicas(d);
    count(new.updated_replicas) == replicas
        && count(new.replicas) == replicas
        && count(new.available_replicas) == replicas
        && new.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// `DeploymentProgressing`: more updated, fewer old, more ready or more available replicas
/// than the Deployment's current status says.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = count(old.replicas) - count(old.updated_replicas);
    let new_old = count(new.replicas) - count(new.updated_replicas);
    count(new.updated_replicas) > count(old.updated_replicas)
        || new_old < old_old
        || count(new.ready_replicas) > count(old.ready_replicas)
        || count(new.available_replicas) > count(old.available_replicas)
}

/// The Progressing condition's last update, or the epoch when it has none (Go's zero time,
/// which makes kube time out at once, as here).
pub fn last_update(c: &DeploymentCondition) -> DateTime<Utc> {
    c.last_update_time
        .as_ref()
        .map_or(DateTime::<Utc>::UNIX_EPOCH, |t| t.0)
}

/// `DeploymentTimedOut`: the Progressing condition says ProgressDeadlineExceeded already, or
/// its last update is more than `progressDeadlineSeconds` ago (and the rollout had not
/// completed).
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: DateTime<Utc>) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = get_condition(Some(new), CONDITION_PROGRESSING) else {
        return false;
    };
    match condition_reason(c) {
        reason::NEW_RS_AVAILABLE => false,
        reason::TIMED_OUT => true,
        _ => {
            let deadline =
                chrono::Duration::seconds(i64::from(progress_deadline_seconds(d).unwrap_or(0)));
            last_update(c) + deadline < now
        }
    }
}

/// The controller reference a Deployment puts on the ReplicaSets it creates or adopts.
pub fn controller_ref(d: &Deployment) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: d.metadata.name.clone()?,
        uid: d.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// What the Deployment does about one ReplicaSet of its namespace (kube's `ClaimObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Controlled by the Deployment and selected by it.
    Owned,
    /// An orphan the Deployment selects: take it (after a fresh check that the Deployment is
    /// not being deleted).
    Adopt,
    /// Controlled by the Deployment but no longer selected: let it go.
    Release,
    /// Someone else's, or not ours to take.
    Ignore,
}

/// `ClaimObject` for a ReplicaSet; `selected`: the Deployment's selector matches its labels.
pub fn claim(d: &Deployment, rs: &ReplicaSet, selected: bool) -> Claim {
    let d_deleting = d.metadata.deletion_timestamp.is_some();
    let controller = rs
        .metadata
        .owner_references
        .as_ref()
        .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)));
    match controller {
        Some(r) if Some(&r.uid) != d.metadata.uid.as_ref() => Claim::Ignore,
        Some(_) if selected => Claim::Owned,
        Some(_) if d_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if d_deleting || !selected || rs.metadata.deletion_timestamp.is_some() => {
            Claim::Ignore
        }
        None if rs.metadata.namespace != d.metadata.namespace => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// The strategic merge patch that makes `d` the controller of `rs`; the uid makes it fail on
/// a ReplicaSet recreated under the same name.
pub fn adopt_patch(d: &Deployment, rs: &ReplicaSet) -> Option<Value> {
    let owner = controller_ref(d)?;
    Some(serde_json::json!({
        "metadata": {
            "ownerReferences": [owner],
            "uid": rs.metadata.uid,
        }
    }))
}

/// The strategic merge patch that removes `d`'s owner reference from `rs`.
pub fn release_patch(d: &Deployment, rs: &ReplicaSet) -> Value {
    serde_json::json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": d.metadata.uid}],
            "uid": rs.metadata.uid,
        }
    })
}
