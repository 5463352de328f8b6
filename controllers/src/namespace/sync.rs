//! The namespace controller's decisions, without I/O (kube's
//! `pkg/controller/namespace/deletion`): which discovered resources to empty, how long pods'
//! graceful termination may still take, what remains after a pass, the five deletion
//! conditions with kube's reasons and messages, and what the sync does next.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResourceList, Time};

/// `v1.FinalizerKubernetes`: this controller's token in `spec.finalizers`.
pub const FINALIZER_KUBERNETES: &str = "kubernetes";

/// kube's `finalizerEstimateSeconds`: how long to assume finalizers on remaining content take.
pub const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

/// kube's `namespaceDeletionGracePeriod`: a deleted namespace is first synced this long after
/// the event, so that every apiserver has seen the deletion (and creates racing it land first).
pub const NAMESPACE_DELETION_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// The condition types the controller maintains, in kube's order.
pub const CONDITION_TYPES: [&str; 5] = [
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
];

/// Reason and message of each condition type when nothing is wrong (status False).
fn ok_condition(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "NamespaceDeletionDiscoveryFailure" => (
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        "NamespaceDeletionGroupVersionParsingFailure" => (
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        "NamespaceDeletionContentFailure" => (
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        "NamespaceContentRemaining" => ("ContentRemoved", "All content successfully removed"),
        _ => (
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished",
        ),
    }
}

/// One namespaced resource to empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub kind: String,
    /// Whether discovery offers `deletecollection` (else list and delete one by one).
    pub delete_collection: bool,
}

impl Target {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// How kube prints a `GroupVersionResource` (`apps/v1, Resource=deployments`).
    pub fn gvr_string(&self) -> String {
        format!(
            "{}/{}, Resource={}",
            self.group, self.version, self.resource
        )
    }
}

/// `schema.ParseGroupVersion`: `v1`, `apps/v1`, or kube's error.
pub fn parse_group_version(gv: &str) -> Result<(String, String), String> {
    if gv.is_empty() || gv == "/" {
        return Ok((String::new(), String::new()));
    }
    match gv.split('/').collect::<Vec<_>>()[..] {
        [v] => Ok((String::new(), v.to_string())),
        [g, v] => Ok((g.to_string(), v.to_string())),
        _ => Err(format!("unexpected GroupVersion string: {gv}")),
    }
}

/// From the preferred version of every group (kube's `ServerPreferredNamespacedResources`):
/// the namespaced resources that can be listed and deleted, subresources skipped. A group
/// version that does not parse fails the whole set, as kube's `GroupVersionResources` does.
pub fn deletable_resources(lists: &[APIResourceList]) -> Result<Vec<Target>, String> {
    let mut out = BTreeSet::new();
    for list in lists {
        let (group, version) = parse_group_version(&list.group_version)?;
        for r in &list.resources {
            let verbs = |v: &str| r.verbs.iter().any(|x| x == v);
            if !r.namespaced || r.name.contains('/') || !verbs("delete") || !verbs("list") {
                continue;
            }
            out.insert(Target {
                group: group.clone(),
                version: version.clone(),
                resource: r.name.clone(),
                kind: r.kind.clone(),
                delete_collection: verbs("deletecollection"),
            });
        }
    }
    Ok(out.into_iter().collect())
}

/// What a pod holds of the estimate: its phase and `terminationGracePeriodSeconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodGrace {
    pub phase: Option<String>,
    pub grace_seconds: Option<i64>,
}

/// kube's `estimateGracefulTermination` for pods: the longest grace period of the pods not yet
/// terminal, or 0 once that long has passed since the namespace was deleted.
pub fn pod_estimate_seconds(pods: &[PodGrace], since_deletion: Duration) -> i64 {
    let estimate = pods
        .iter()
        .filter(|p| !matches!(p.phase.as_deref(), Some("Succeeded" | "Failed")))
        .filter_map(|p| p.grace_seconds)
        .max()
        .unwrap_or(0)
        .max(0);
    if since_deletion >= Duration::from_secs(estimate as u64) {
        0
    } else {
        estimate
    }
}

/// What one resource still holds after its pass (kube's `gvrDeletionMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remaining {
    pub estimate_seconds: i64,
    pub count: usize,
    pub finalizers: BTreeMap<String, usize>,
}

/// The end of kube's `deleteAllContentForGroupVersionResource`: given the estimate and the
/// finalizers of each object still listed, what remains, and the error when objects remain that
/// nothing explains (no estimate and no finalizer).
pub fn remaining(
    target: &Target,
    namespace: &str,
    estimate_seconds: i64,
    items_finalizers: &[Vec<String>],
) -> (Remaining, Option<String>) {
    if items_finalizers.is_empty() {
        return (Remaining::default(), None);
    }
    let mut finalizers = BTreeMap::new();
    for f in items_finalizers.iter().flatten() {
        *finalizers.entry(f.clone()).or_insert(0) += 1;
    }
    let count = items_finalizers.len();
    if estimate_seconds != 0 {
        return (
            Remaining {
                estimate_seconds,
                count,
                finalizers,
            },
            None,
        );
    }
    if !finalizers.is_empty() {
        return (
            Remaining {
                estimate_seconds: FINALIZER_ESTIMATE_SECONDS,
                count,
                finalizers,
            },
            None,
        );
    }
    (
        Remaining {
            estimate_seconds,
            count,
            finalizers: BTreeMap::new(),
        },
        Some(format!(
            "unexpected items still remain in namespace: {namespace} for gvr: {}",
            target.gvr_string()
        )),
    )
}

/// What went wrong in one pass, as the conditions report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Discovery's error message (the whole condition message, kube's wording).
    pub discovery_failure: Option<String>,
    pub group_version_failure: Option<String>,
    /// One message per resource whose deletion failed.
    pub content_failures: Vec<String>,
    /// Objects remaining, per (group, resource).
    pub remaining: BTreeMap<(String, String), usize>,
    /// Objects remaining, per finalizer.
    pub finalizers: BTreeMap<String, usize>,
    /// The longest estimate of any resource (seconds).
    pub estimate_seconds: i64,
}

impl Pass {
    pub fn add(&mut self, target: &Target, r: &Remaining, error: Option<String>) {
        if let Some(e) = error {
            self.content_failures.push(e);
        }
        self.estimate_seconds = self.estimate_seconds.max(r.estimate_seconds);
        if r.count > 0 {
            *self
                .remaining
                .entry((target.group.clone(), target.resource.clone()))
                .or_insert(0) += r.count;
            for (f, n) in &r.finalizers {
                if *n > 0 {
                    *self.finalizers.entry(f.clone()).or_insert(0) += n;
                }
            }
        }
    }

    /// Whether the pass failed (kube's `deleteAllContent` returned an error): the sync is
    /// retried with backoff and the namespace is not finalized.
    pub fn failed(&self) -> bool {
        self.discovery_failure.is_some()
            || self.group_version_failure.is_some()
            || !self.content_failures.is_empty()
    }
}

/// The discovery condition's message for groups that failed (kube's `ErrGroupDiscoveryFailed`).
pub fn discovery_failure_message(failed: &BTreeMap<String, String>) -> String {
    let groups: Vec<String> = failed.iter().map(|(gv, e)| format!("{gv}: {e}")).collect();
    format!(
        "Discovery failed for some groups, {} failing: unable to retrieve the complete list of server APIs: {}",
        failed.len(),
        groups.join(", ")
    )
}

/// (type, status, reason, message) of each condition after a pass.
pub fn desired_conditions(pass: &Pass) -> Vec<(&'static str, &'static str, String, String)> {
    let mut out = Vec::new();
    for kind in CONDITION_TYPES {
        let failing: Option<(&str, String)> = match kind {
            "NamespaceDeletionDiscoveryFailure" => pass
                .discovery_failure
                .clone()
                .map(|m| ("DiscoveryFailed", m)),
            "NamespaceDeletionGroupVersionParsingFailure" => pass
                .group_version_failure
                .clone()
                .map(|m| ("GroupVersionParsingFailed", m)),
            "NamespaceDeletionContentFailure" => (!pass.content_failures.is_empty()).then(|| {
                let mut msgs = pass.content_failures.clone();
                msgs.sort();
                (
                    "ContentDeletionFailed",
                    format!(
                        "Failed to delete all resource types, {} remaining: {}",
                        msgs.len(),
                        msgs.join(", ")
                    ),
                )
            }),
            "NamespaceContentRemaining" => (!pass.remaining.is_empty()).then(|| {
                let mut parts: Vec<String> = pass
                    .remaining
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|((g, r), n)| format!("{r}.{g} has {n} resource instances"))
                    .collect();
                parts.sort();
                (
                    "SomeResourcesRemain",
                    format!("Some resources are remaining: {}", parts.join(", ")),
                )
            }),
            _ => (!pass.finalizers.is_empty()).then(|| {
                let mut parts: Vec<String> = pass
                    .finalizers
                    .iter()
                    .map(|(f, n)| format!("{f} in {n} resource instances"))
                    .collect();
                parts.sort();
                (
                    "SomeFinalizersRemain",
                    format!(
                        "Some content in the namespace has finalizers remaining: {}",
                        parts.join(", ")
                    ),
                )
            }),
        };
        match failing {
            Some((reason, message)) => out.push((kind, "True", reason.to_string(), message)),
            None => {
                let (reason, message) = ok_condition(kind);
                out.push((kind, "False", reason.to_string(), message.to_string()));
            }
        }
    }
    out
}

/// kube's `updateConditions`: the namespace's conditions with each maintained type set as
/// desired (a new transition time only when the status flips), or `None` when nothing changed.
pub fn updated_conditions(
    existing: &[NamespaceCondition],
    desired: &[(&'static str, &'static str, String, String)],
    now: Time,
) -> Option<Vec<NamespaceCondition>> {
    let mut conditions = existing.to_vec();
    let mut changed = false;
    for (kind, status, reason, message) in desired {
        match conditions.iter_mut().find(|c| c.type_ == *kind) {
            None => {
                conditions.push(NamespaceCondition {
                    type_: kind.to_string(),
                    status: status.to_string(),
                    reason: Some(reason.clone()),
                    message: Some(message.clone()),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
            Some(c) => {
                let same = c.status == *status
                    && c.reason.as_deref() == Some(reason)
                    && c.message.as_deref() == Some(message);
                if !same {
                    if c.status != *status {
                        c.last_transition_time = Some(now.clone());
                    }
                    c.status = status.to_string();
                    c.reason = Some(reason.clone());
                    c.message = Some(message.clone());
                    changed = true;
                }
            }
        }
    }
    changed.then_some(conditions)
}

/// What a sync does after a pass over the namespace's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Content is gone: take `kubernetes` out of spec.finalizers.
    Finalize,
    /// Content remains that is expected to go (graceful pods, finalizers): look again then
    /// (kube's `ResourcesRemainingError`, requeued after estimate/2 + 1 seconds).
    Requeue(Duration),
    /// The pass failed: retry with the queue's backoff.
    Retry(String),
}

pub fn next(pass: &Pass) -> Next {
    if pass.failed() {
        let mut errors: Vec<String> = pass
            .discovery_failure
            .iter()
            .chain(&pass.group_version_failure)
            .chain(&pass.content_failures)
            .cloned()
            .collect();
        errors.sort();
        return Next::Retry(errors.join(", "));
    }
    if pass.estimate_seconds > 0 {
        return Next::Requeue(Duration::from_secs((pass.estimate_seconds / 2 + 1) as u64));
    }
    Next::Finalize
}

/// Whether the namespace needs this controller: being deleted and not yet finalized (kube's
/// `finalized` is an empty spec.finalizers).
pub fn needs_finalizing(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        && ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| !f.is_empty())
}

/// kube's `finalizeNamespace`: spec.finalizers without this controller's token, as a sorted set.
pub fn finalized_spec_finalizers(ns: &Namespace) -> Vec<String> {
    let set: BTreeSet<String> = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER_KUBERNETES)
        .collect();
    set.into_iter().collect()
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
