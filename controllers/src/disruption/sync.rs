//! The disruption controller's decisions (kube's `pkg/controller/disruption/disruption.go`), as
//! plain functions of the PodDisruptionBudget, its pods, the scales of their controllers and
//! the time: which pods a budget selects, how many pods it expects and needs healthy, which
//! recorded disruptions still count, and the status to write (or none when it is up to date).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{Selector, SelectorExt};

use crate::util::pod::{controller_ref, is_pod_ready, labels};

/// kube's `DeletionTimeout`: an eviction recorded in `status.disruptedPods` whose pod is not
/// being deleted after this long no longer counts.
pub const DELETION_TIMEOUT: Duration = Duration::minutes(2);

pub const CONDITION_DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
pub const REASON_SUFFICIENT_PODS: &str = "SufficientPods";
pub const REASON_INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const REASON_SYNC_FAILED: &str = "SyncFailed";

/// The budget's selector (`metav1.LabelSelectorAsSelector`): on policy/v1 an empty selector
/// selects every pod of the namespace, a missing one none.
pub fn budget_selector(pdb: &PodDisruptionBudget) -> Result<Option<Selector>, String> {
    match pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        None => Ok(None),
        Some(sel) => Selector::try_from(sel.clone())
            .map(Some)
            .map_err(|e| format!("invalid selector: {}", e.0)),
    }
}

/// The pods (of the budget's namespace, given) the budget selects (`getPodsForPdb`).
pub fn pods_for<'p>(
    sel: Option<&Selector>,
    pods: impl IntoIterator<Item = &'p Pod>,
) -> Vec<&'p Pod> {
    let Some(sel) = sel else { return Vec::new() };
    pods.into_iter()
        .filter(|p| sel.matches(labels(&p.metadata)))
        .collect()
}

/// The controller of a pod and its scale, once looked up: `(uid, spec.replicas)` of the
/// Deployment (for a ReplicaSet a Deployment controls), ReplicaSet, StatefulSet or
/// ReplicationController; `None` when no supported controller with that uid exists.
pub type Scale = Option<(String, i32)>;

/// `intstr.GetScaledValueFromIntOrPercent(v, total, roundUp)`.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let p: i64 = s
                .strip_suffix('%')
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let product = p * i64::from(total);
            let v = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(v).map_err(|_| format!("invalid value for IntOrString: {s:?}"))
        }
    }
}

/// What `getExpectedPodCount` finds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expected {
    pub expected_count: i32,
    pub desired_healthy: i32,
    /// Pods without a controller (reported in an `UnmanagedPods` Event, not an error).
    pub unmanaged: Vec<String>,
}

/// Whether the budget's arithmetic needs the scale of the pods' controllers (`maxUnavailable`,
/// or a percentage `minAvailable`).
pub fn needs_scale(pdb: &PodDisruptionBudget) -> bool {
    let spec = pdb.spec.as_ref();
    spec.and_then(|s| s.max_unavailable.as_ref()).is_some()
        || matches!(
            spec.and_then(|s| s.min_available.as_ref()),
            Some(IntOrString::String(_))
        )
}

/// `getExpectedScale`: the sum of the scales of the pods' controllers, each counted once.
fn expected_scale(
    pods: &[&Pod],
    scale_of: &dyn Fn(&OwnerReference) -> Scale,
) -> Result<(i32, Vec<String>), String> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(r) = controller_ref(&pod.metadata) else {
            unmanaged.push(name);
            continue;
        };
        if scales.contains_key(&r.uid) {
            continue;
        }
        match scale_of(r) {
            Some((uid, n)) => {
                scales.insert(uid, n);
            }
            None => return Err(format!("found no controllers for pod {name:?}")),
        }
    }
    Ok((scales.values().sum(), unmanaged))
}

/// `getExpectedPodCount`: how many pods the budget expects and how many it needs healthy.
pub fn expected_pod_count(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scale_of: &dyn Fn(&OwnerReference) -> Scale,
) -> Result<Expected, String> {
    let spec = pdb.spec.as_ref();
    if let Some(max) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        let (expected_count, unmanaged) = expected_scale(pods, scale_of)?;
        let max = scaled_value(max, expected_count, true)?;
        return Ok(Expected {
            expected_count,
            desired_healthy: (expected_count - max).max(0),
            unmanaged,
        });
    }
    match spec.and_then(|s| s.min_available.as_ref()) {
        Some(IntOrString::Int(n)) => Ok(Expected {
            expected_count: i32::try_from(pods.len()).unwrap_or(i32::MAX),
            desired_healthy: *n,
            unmanaged: Vec::new(),
        }),
        Some(min @ IntOrString::String(_)) => {
            let (expected_count, unmanaged) = expected_scale(pods, scale_of)?;
            Ok(Expected {
                expected_count,
                desired_healthy: scaled_value(min, expected_count, true)?,
                unmanaged,
            })
        }
        None => Ok(Expected::default()),
    }
}

/// `buildDisruptedPodMap`: the recorded disruptions that still count (the pod exists, is not
/// being deleted yet, and its eviction is younger than [`DELETION_TIMEOUT`]), when to look
/// again, and the pods whose eviction timed out (a `NotDeleted` Event each).
pub fn disrupted_pods(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    now: DateTime<Utc>,
) -> (BTreeMap<String, Time>, Option<DateTime<Utc>>, Vec<String>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<DateTime<Utc>> = None;
    let mut timed_out = Vec::new();
    let Some(recorded) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return (kept, recheck, timed_out);
    };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = recorded.get(&name) else {
            continue;
        };
        let expected_deletion = at.0 + DELETION_TIMEOUT;
        if expected_deletion < now {
            timed_out.push(name);
        } else {
            if recheck.is_none_or(|r| expected_deletion < r) {
                recheck = Some(expected_deletion);
            }
            kept.insert(name, at.clone());
        }
    }
    (kept, recheck, timed_out)
}

/// `countHealthyPods`: Ready pods neither being deleted nor recently evicted.
pub fn count_healthy(pods: &[&Pod], disrupted: &BTreeMap<String, Time>, now: DateTime<Utc>) -> i32 {
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or("");
            disrupted
                .get(name)
                .is_none_or(|at| at.0 + DELETION_TIMEOUT <= now)
        })
        .filter(|p| is_pod_ready(p))
        .count();
    i32::try_from(healthy).unwrap_or(i32::MAX)
}

/// `meta.SetStatusCondition`: replaces the condition of the same type, moving its transition
/// time only when the status changes.
pub fn set_condition(conditions: &mut Vec<Condition>, mut c: Condition) {
    match conditions.iter_mut().find(|o| o.type_ == c.type_) {
        Some(old) => {
            if old.status == c.status {
                c.last_transition_time = old.last_transition_time.clone();
            }
            *old = c;
        }
        None => conditions.push(c),
    }
}

/// `pdbhelper.UpdateDisruptionAllowedCondition`.
fn update_disruption_allowed_condition(status: &mut PodDisruptionBudgetStatus, now: DateTime<Utc>) {
    let (st, reason) = if status.disruptions_allowed > 0 {
        ("True", REASON_SUFFICIENT_PODS)
    } else {
        ("False", REASON_INSUFFICIENT_PODS)
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    set_condition(
        conditions,
        Condition {
            type_: CONDITION_DISRUPTION_ALLOWED.into(),
            status: st.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: status.observed_generation,
            last_transition_time: Time(now),
        },
    );
}

/// `pdbhelper.ConditionsAreUpToDate`.
fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(status) = pdb.status.as_ref() else {
        return false;
    };
    let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == CONDITION_DISRUPTION_ALLOWED)
    else {
        return false;
    };
    if status.observed_generation.unwrap_or(0) != pdb.metadata.generation.unwrap_or(0) {
        return false;
    }
    if status.disruptions_allowed > 0 {
        c.status == "True" && c.reason == REASON_SUFFICIENT_PODS
    } else {
        c.status == "False" && c.reason == REASON_INSUFFICIENT_PODS
    }
}

/// What one sync observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_count: i32,
    pub disrupted_pods: BTreeMap<String, Time>,
}

/// `updatePdbStatus`: the status to write, or `None` when the stored one already says it.
/// Disruptions are allowed only while more pods are healthy than needed, and never while the
/// budget expects no pods (its first pods may not be counted yet).
pub fn new_status(
    pdb: &PodDisruptionBudget,
    o: &Observed,
    now: DateTime<Utc>,
) -> Option<PodDisruptionBudgetStatus> {
    let mut allowed = o.current_healthy - o.desired_healthy;
    if o.expected_count <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let old = pdb.status.clone().unwrap_or_default();
    let old_disrupted = old.disrupted_pods.clone().unwrap_or_default();
    if old.current_healthy == o.current_healthy
        && old.desired_healthy == o.desired_healthy
        && old.expected_pods == o.expected_count
        && old.disruptions_allowed == allowed
        && old_disrupted == o.disrupted_pods
        && old.observed_generation.unwrap_or(0) == pdb.metadata.generation.unwrap_or(0)
        && conditions_up_to_date(pdb)
    {
        return None;
    }
    let mut status = PodDisruptionBudgetStatus {
        current_healthy: o.current_healthy,
        desired_healthy: o.desired_healthy,
        expected_pods: o.expected_count,
        disruptions_allowed: allowed,
        // Go's map with omitempty: an empty map is not written.
        disrupted_pods: (!o.disrupted_pods.is_empty()).then(|| o.disrupted_pods.clone()),
        observed_generation: pdb.metadata.generation,
        conditions: old.conditions,
    };
    update_disruption_allowed_condition(&mut status, now);
    Some(status)
}

/// `failSafe`: after a failed sync no disruption is allowed, and the condition says why.
pub fn fail_safe_status(
    pdb: &PodDisruptionBudget,
    message: &str,
    now: DateTime<Utc>,
) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let observed = status.observed_generation;
    set_condition(
        status.conditions.get_or_insert_with(Vec::new),
        Condition {
            type_: CONDITION_DISRUPTION_ALLOWED.into(),
            status: "False".into(),
            reason: REASON_SYNC_FAILED.into(),
            message: message.into(),
            observed_generation: observed,
            last_transition_time: Time(now),
        },
    );
    status
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
