//! What a DELETE does to an object, decided without I/O (kube's generic registry `Store.Delete`
//! with `rest.BeforeDelete`, `deletionFinalizersForGarbageCollection` and `markAsDeleting`, and
//! the namespace storage's own `Delete`): the DeleteOptions as kube validates them, each kind's
//! default garbage-collection policy, the `orphan` / `foregroundDeletion` finalizers a
//! propagation policy asks for, graceful pod deletion, and whether the object stays (marked as
//! being deleted) or goes. `store::delete_one` reads, asks [`plan`], and writes what it says.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::error::{ApiError, Cause};
use crate::machinery::meta;
use crate::machinery::time::{format_rfc3339, parse_rfc3339, unix_seconds};
use crate::resources::ResourceInfo;

/// `metav1.FinalizerOrphanDependents`: the garbage collector orphans the dependents first.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// `metav1.FinalizerDeleteDependents`: the garbage collector deletes the blocking dependents
/// first (foreground cascading deletion).
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// `metav1.DeletionPropagation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

/// The DeleteOptions a delete honours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    /// Deprecated `orphanDependents`.
    pub orphan_dependents: Option<bool>,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads DeleteOptions (JSON, as the handler merged body and query) and validates them as
    /// kube's `ValidateDeleteOptions` does: 422 on `DeleteOptions.meta.k8s.io ""`.
    pub fn parse(v: &Value) -> Result<Self, ApiError> {
        let mut causes = Vec::new();
        let policy = v.get("propagationPolicy").filter(|p| !p.is_null());
        let orphan_dependents = match v.get("orphanDependents") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "orphanDependents: expected a boolean, got {other}"
                )))
            }
        };
        let shown = |p: &Value| p.as_str().map_or_else(|| p.to_string(), str::to_string);
        if let (Some(p), Some(_)) = (policy, orphan_dependents) {
            causes.push(Cause::invalid(
                "propagationPolicy",
                &json!(shown(p)),
                "orphanDependents and deletionPropagation cannot be both set",
            ));
        }
        let propagation = match policy.map(|p| (p, p.as_str())) {
            None => None,
            Some((_, Some("Orphan"))) => Some(Propagation::Orphan),
            Some((_, Some("Background"))) => Some(Propagation::Background),
            Some((_, Some("Foreground"))) => Some(Propagation::Foreground),
            Some((p, _)) => {
                causes.push(Cause::unsupported(
                    "propagationPolicy",
                    &shown(p),
                    &["Foreground", "Background", "Orphan", "nil"],
                ));
                None
            }
        };
        let dry_run: Vec<&str> = v
            .get("dryRun")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for d in &dry_run {
            if *d != "All" {
                causes.push(Cause::unsupported("dryRun", d, &["All"]));
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid_group_kind(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                causes,
            ));
        }
        Ok(DeleteOptions {
            propagation,
            orphan_dependents,
            grace_period_seconds: v.get("gracePeriodSeconds").and_then(Value::as_i64),
            precondition_uid: v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_resource_version: v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            dry_run: !dry_run.is_empty(),
        })
    }
}

/// `rest.GarbageCollectionPolicy`: what a delete without a policy does to dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcPolicy {
    /// Background: the object goes, the garbage collector deletes its dependents after.
    DeleteDependents,
    /// The dependents are orphaned (kube keeps this default for old kinds' back compatibility).
    OrphanDependents,
    /// No garbage-collection finalizers at all (events).
    Unsupported,
}

/// Each kind's `DefaultGarbageCollectionPolicy` as served here: batch/v1 Jobs and core/v1
/// ReplicationControllers orphan (kept for back compatibility), events take no part, every
/// other kind deletes its dependents in the background.
pub fn default_gc_policy(r: &ResourceInfo) -> GcPolicy {
    match (r.group, r.kind) {
        ("batch", "Job") | ("", "ReplicationController") => GcPolicy::OrphanDependents,
        (_, "Event") => GcPolicy::Unsupported,
        _ => GcPolicy::DeleteDependents,
    }
}

/// kube's `shouldOrphanDependents`: options first, then the object's finalizers, then the
/// kind's default.
fn should_orphan(policy: GcPolicy, finalizers: &[String], o: &DeleteOptions) -> bool {
    if policy == GcPolicy::Unsupported {
        return false;
    }
    if let Some(b) = o.orphan_dependents {
        return b;
    }
    match o.propagation {
        Some(Propagation::Orphan) => return true,
        Some(_) => return false,
        None => {}
    }
    for f in finalizers {
        match f.as_str() {
            FINALIZER_ORPHAN => return true,
            FINALIZER_FOREGROUND => return false,
            _ => {}
        }
    }
    policy == GcPolicy::OrphanDependents
}

/// kube's `shouldDeleteDependents`.
fn should_delete_dependents(policy: GcPolicy, finalizers: &[String], o: &DeleteOptions) -> bool {
    if policy == GcPolicy::Unsupported || o.orphan_dependents.is_some() {
        return false;
    }
    match o.propagation {
        Some(Propagation::Foreground) => return true,
        Some(_) => return false,
        None => {}
    }
    for f in finalizers {
        match f.as_str() {
            FINALIZER_FOREGROUND => return true,
            FINALIZER_ORPHAN => return false,
            _ => {}
        }
    }
    false
}

/// kube's `deletionFinalizersForGarbageCollection`: the finalizers the object should have
/// (both GC finalizers removed, then added back as the options decide), or `None` when the set
/// does not change.
pub fn gc_finalizers(
    policy: GcPolicy,
    finalizers: &[String],
    o: &DeleteOptions,
) -> Option<Vec<String>> {
    let orphan = should_orphan(policy, finalizers, o);
    let foreground = should_delete_dependents(policy, finalizers, o);
    let mut new: Vec<String> = finalizers
        .iter()
        .filter(|f| *f != FINALIZER_ORPHAN && *f != FINALIZER_FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        new.push(FINALIZER_ORPHAN.into());
    }
    if foreground {
        new.push(FINALIZER_FOREGROUND.into());
    }
    let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    (set(&new) != set(finalizers)).then_some(new)
}

/// The namespace storage's `shouldHaveOrphanFinalizer` / `shouldHaveDeleteDependentsFinalizer`
/// on the first DELETE: the options decide, else the namespace keeps what it has. `None` when
/// nothing changes.
pub fn namespace_gc_finalizers(finalizers: &[String], o: &DeleteOptions) -> Option<Vec<String>> {
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    let orphan = match (o.orphan_dependents, o.propagation) {
        (Some(b), _) => b,
        (None, Some(p)) => p == Propagation::Orphan,
        (None, None) => has(FINALIZER_ORPHAN),
    };
    let foreground = match (o.orphan_dependents, o.propagation) {
        (Some(b), _) => !b,
        (None, Some(p)) => p == Propagation::Foreground,
        (None, None) => has(FINALIZER_FOREGROUND),
    };
    if orphan == has(FINALIZER_ORPHAN) && foreground == has(FINALIZER_FOREGROUND) {
        return None;
    }
    let mut new: Vec<String> = finalizers
        .iter()
        .filter(|f| *f != FINALIZER_ORPHAN && *f != FINALIZER_FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        new.push(FINALIZER_ORPHAN.into());
    }
    if foreground {
        new.push(FINALIZER_FOREGROUND.into());
    }
    Some(new)
}

/// What the store does with the object a DELETE names.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing to write: the deletion is already under way as asked (the object is returned).
    Unchanged,
    /// Store this object: it stays, marked as being deleted, until its finalizers or grace
    /// period are done.
    Update(Value),
    /// Remove the object from storage now.
    Remove,
}

/// Namespaces that may not be deleted: NamespaceLifecycle's immortal ones (`default`,
/// `kube-system`, `kube-public`), and `kube-node-lease`, which kube lets go because its
/// system-namespaces controller recreates it at once; nothing here recreates it (bootstrap runs
/// once), and without it no node can renew its Lease.
pub const IMMORTAL_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn set_finalizers(obj: &mut Value, f: Vec<String>) {
    let m = meta::meta_mut(obj);
    if f.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(f));
    }
}

/// kube's `markAsDeleting`: deletionTimestamp now (unless an earlier one is set), grace 0, and
/// a new generation the first time.
fn mark_as_deleting(obj: &mut Value, now: SystemTime) {
    let now_secs = unix_seconds(now);
    let m = meta::meta_mut(obj);
    let existing = m
        .get("deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    if existing.is_none() {
        if let Some(g) = m
            .get("generation")
            .and_then(Value::as_i64)
            .filter(|g| *g > 0)
        {
            m.insert("generation".into(), json!(g + 1));
        }
    }
    if existing.is_none_or(|t| t > now_secs) {
        m.insert("deletionTimestamp".into(), json!(format_rfc3339(now_secs)));
    }
    m.insert("deletionGracePeriodSeconds".into(), json!(0));
}

/// kube's `rest.BeforeDelete` with the pod strategy's `CheckGracefulDelete` (pods are the one
/// kind served here that deletes gracefully). Returns `(graceful, pending)`: graceful when
/// `obj` was given (or shortened) a grace period, pending when a graceful deletion is already
/// under way and these options do not shorten it.
fn before_delete(
    r: &ResourceInfo,
    obj: &mut Value,
    o: &DeleteOptions,
    now: SystemTime,
) -> (bool, bool) {
    if !(r.group.is_empty() && r.plural == "pods") {
        return (false, false);
    }
    // Negative grace periods count as one second on the delete path.
    let asked = o.grace_period_seconds.map(|g| if g < 0 { 1 } else { g });
    let m = meta::meta_mut(obj);
    if let Some(ts) = m
        .get("deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
    {
        let current = m
            .get("deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .map(|g| if g < 0 { 1 } else { g });
        let Some(current) = current.filter(|g| *g != 0) else {
            // Marked with no grace left: delete at once (kube's recovery from a delete that
            // failed after its update).
            return (false, false);
        };
        return match asked {
            Some(p) if p < current => {
                m.insert(
                    "deletionTimestamp".into(),
                    json!(format_rfc3339(ts - current + p)),
                );
                m.insert("deletionGracePeriodSeconds".into(), json!(p));
                (true, false)
            }
            _ => (false, true),
        };
    }
    let mut period = asked.unwrap_or_else(|| {
        obj.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    });
    let unscheduled = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let terminated = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Failed" | "Succeeded")
    );
    if unscheduled || terminated {
        period = 0;
    }
    let when = now + Duration::from_secs(period.max(0) as u64);
    let m = meta::meta_mut(obj);
    m.insert(
        "deletionTimestamp".into(),
        json!(format_rfc3339(unix_seconds(when))),
    );
    m.insert("deletionGracePeriodSeconds".into(), json!(period));
    if let Some(g) = m
        .get("generation")
        .and_then(Value::as_i64)
        .filter(|g| *g > 0)
    {
        m.insert("generation".into(), json!(g + 1));
    }
    (true, false)
}

/// kube's generic `Store.Delete` (after the preconditions): what happens to `cur`.
fn plan_generic(r: &ResourceInfo, cur: &Value, o: &DeleteOptions, now: SystemTime) -> Plan {
    let policy = default_gc_policy(r);
    let mut obj = cur.clone();
    let (graceful, pending_graceful) = before_delete(r, &mut obj, o, now);
    // Finalizers cannot be changed by DeleteOptions once a graceful deletion is pending.
    if pending_graceful {
        return Plan::Unchanged;
    }
    let had = finalizers(&obj);
    let new_finalizers = gc_finalizers(policy, &had, o);
    if !graceful && had.is_empty() && new_finalizers.is_none() {
        return Plan::Remove;
    }
    if let Some(f) = new_finalizers {
        set_finalizers(&mut obj, f);
    }
    let pending_finalizers = !finalizers(&obj).is_empty();
    if !graceful {
        if !pending_finalizers {
            return Plan::Remove;
        }
        mark_as_deleting(&mut obj, now);
        return Plan::Update(obj);
    }
    let grace = obj
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if pending_finalizers || grace > 0 {
        Plan::Update(obj)
    } else {
        Plan::Remove
    }
}

/// The namespace storage's `Delete`: the first DELETE marks the namespace Terminating (the
/// namespace controller empties it and takes `kubernetes` out of `spec.finalizers`); once
/// `spec.finalizers` is empty a DELETE is the generic one.
fn plan_namespace(r: &ResourceInfo, cur: &Value, o: &DeleteOptions, now: SystemTime) -> Plan {
    if cur.pointer("/metadata/deletionTimestamp").is_none() {
        let mut obj = cur.clone();
        let m = meta::meta_mut(&mut obj);
        m.insert(
            "deletionTimestamp".into(),
            json!(format_rfc3339(unix_seconds(now))),
        );
        if let Some(f) = namespace_gc_finalizers(&finalizers(cur), o) {
            set_finalizers(&mut obj, f);
        }
        obj["status"]["phase"] = json!("Terminating");
        return Plan::Update(obj);
    }
    let spec_finalizers = cur
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if spec_finalizers {
        return Plan::Unchanged;
    }
    plan_generic(r, cur, o, now)
}

/// What a DELETE of `cur` does, or kube's refusal (NamespaceLifecycle: the system namespaces
/// may not be deleted).
pub fn plan(
    r: &ResourceInfo,
    cur: &Value,
    o: &DeleteOptions,
    now: SystemTime,
) -> Result<Plan, ApiError> {
    if r.group.is_empty() && r.plural == "namespaces" {
        let name = meta::meta_str(cur, "name").unwrap_or("");
        if IMMORTAL_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(
                r,
                name,
                "this namespace may not be deleted",
            ));
        }
        return Ok(plan_namespace(r, cur, o, now));
    }
    Ok(plan_generic(r, cur, o, now))
}

#[cfg(test)]
#[path = "deletion/tests.rs"]
mod tests;
