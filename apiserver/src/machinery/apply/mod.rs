//! Server-side apply (`PATCH` with `application/apply-patch+yaml`) and `metadata.managedFields`
//! bookkeeping for ordinary writes, over `serde_json::Value` objects.
//!
//! This follows sigs.k8s.io/structured-merge-diff (`fieldpath`, `typed` compare/merge/toFieldSet,
//! `merge/update.go`) and k8s.io/apiserver's `fieldmanager` wrappers (strip of server-set
//! metadata, reset fields, the "current-operation" trick of `managedFieldsUpdater`, the conflict
//! message of `internal/conflict.go`). It is our own code: only the behaviour is copied.
//!
//! Instead of kube's full OpenAPI schema, the structure of an object comes from its JSON shape
//! plus the list types (`x-kubernetes-list-type` map/set/atomic with their list-map keys) and
//! atomic maps/structs of [`crate::machinery::schema`], as `rules.rs` views them. Every list
//! without a rule is atomic, as kube treats lists without a list type.
//!
//! Files: `rules.rs` (the schema view per kind), `fieldpath.rs` (paths, sets, `fieldsV1`),
//! `typed.rs` (to-field-set, merge, compare, prune over values); this file holds managers,
//! reset fields and the two entry points, [`server_side_apply`] and [`record_update`].

use serde_json::{Map, Value};
use std::collections::BTreeMap;

mod fieldpath;
mod rules;
mod typed;

use fieldpath::{field_path, fields_v1_to_set, iterate_order, path_string, remove_under};
use fieldpath::{set_to_fields_v1, FieldSet, Path};
use rules::Schema;
use typed::{compare, describe, merge, prune, to_field_set, Comparison};

/// One field another manager owns with a different value than the applied configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager as kube prints it: `"kubectl"` for an applier,
    /// `"kubectl" with subresource "scale" using apps/v1` for an updater (quotes included).
    pub manager: String,
    /// The field path as kube prints it, e.g. `.spec.replicas` or
    /// `.spec.template.spec.containers[name="nginx"].image`.
    pub field: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// 409: other managers own fields the applied config sets to different values (and force=false).
    #[error("{}", conflict_message(.conflicts))]
    Conflict { conflicts: Vec<Conflict> },
    /// 400/422: the applied object is invalid (not an object, wrong apiVersion/kind, no name,
    /// managedFields set, malformed associative lists).
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// Exactly the text kube-apiserver puts in the Status `message`.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// kube's `getConflictMessage`; `conflicts` are already grouped by manager in kube's order.
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager, only.field
        );
    }
    let mut lines: Vec<String> = Vec::new();
    let mut last: Option<&str> = None;
    for c in conflicts {
        if last != Some(c.manager.as_str()) {
            lines.push(format!("conflicts with {}:", c.manager));
            last = Some(c.manager.as_str());
        }
        lines.push(format!("- {}", c.field));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

pub struct ApplyOptions<'a> {
    pub manager: &'a str,
    pub force: bool,
    /// RFC 3339 at second precision, e.g. `2026-11-24T02:00:00Z`.
    pub now: &'a str,
    pub subresource: Option<&'a str>,
}

// ---------------------------------------------------------------------------------------------
// Managers (fieldmanager: decode/encode, strip, reset fields)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    apply: bool,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    set: FieldSet,
}

impl Entry {
    /// kube's `BuildManagerIdentifier`: the JSON of the entry without fields and time, and
    /// without apiVersion for appliers. Used as the map key and to sort conflicts by manager.
    fn id(&self) -> String {
        manager_id(
            &self.manager,
            self.apply,
            &self.api_version,
            self.subresource.as_deref(),
        )
    }

    /// kube's `printManager`.
    fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s = format!("{s} with subresource {sub:?}");
        }
        if !self.apply {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), Value::String(self.manager.clone()));
        m.insert(
            "operation".into(),
            Value::String(if self.apply { "Apply" } else { "Update" }.into()),
        );
        m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(t) = &self.time {
            m.insert("time".into(), Value::String(t.clone()));
        }
        m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        m.insert("fieldsV1".into(), set_to_fields_v1(&self.set));
        if let Some(sub) = &self.subresource {
            m.insert("subresource".into(), Value::String(sub.clone()));
        }
        Value::Object(m)
    }
}

fn manager_id(manager: &str, apply: bool, api_version: &str, subresource: Option<&str>) -> String {
    let mut m = Map::new();
    if !manager.is_empty() {
        m.insert("manager".into(), Value::String(manager.into()));
    }
    let op = if apply { "Apply" } else { "Update" };
    m.insert("operation".into(), Value::String(op.into()));
    if !apply && !api_version.is_empty() {
        m.insert("apiVersion".into(), Value::String(api_version.into()));
    }
    if let Some(sub) = subresource.filter(|s| !s.is_empty()) {
        m.insert("subresource".into(), Value::String(sub.into()));
    }
    // Keys in Go's struct order, not map order.
    let order = ["manager", "operation", "apiVersion", "subresource"];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|k| m.get(*k).map(|v| format!("{:?}:{}", k, v)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

type Managers = BTreeMap<String, Entry>;

/// `DecodeManagedFields`; `None` when the list is malformed (kube then falls back or resets).
fn decode_managers(v: Option<&Value>) -> Option<Managers> {
    let mut out = Managers::new();
    let list = match v {
        None | Some(Value::Null) => return Some(out),
        Some(Value::Array(l)) => l,
        Some(_) => return None,
    };
    for e in list {
        let m = e.as_object()?;
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let apply = match s("operation").as_deref() {
            Some("Apply") => true,
            Some("Update") => false,
            _ => return None,
        };
        if s("fieldsType").as_deref().is_some_and(|t| t != "FieldsV1") {
            return None;
        }
        let set = match m.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(f) => fields_v1_to_set(f)?,
        };
        let entry = Entry {
            manager: s("manager").unwrap_or_default(),
            apply,
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time"),
            subresource: s("subresource").filter(|x| !x.is_empty()),
            set,
        };
        match out.get_mut(&entry.id()) {
            // kube refuses duplicates; merging them is the forgiving equivalent.
            Some(prev) => prev.set.extend(entry.set),
            None => {
                out.insert(entry.id(), entry);
            }
        }
    }
    Some(out)
}

/// `encodeManagedFields` + `sortEncodedManagedFields`.
fn encode_managers(obj: &mut Value, managers: &Managers) {
    let mut entries: Vec<&Entry> = managers.values().filter(|e| !e.set.is_empty()).collect();
    entries.sort_by(|p, q| {
        (!p.apply)
            .cmp(&!q.apply)
            .then_with(|| p.time.cmp(&q.time))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            let list = entries.iter().map(|e| e.to_json()).collect();
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Paths `stripMetaManager` takes out of every manager's set (exact paths, not subtrees).
fn strip_set() -> Vec<Path> {
    let mut v = vec![field_path(&["apiVersion"]), field_path(&["kind"])];
    v.push(field_path(&["metadata"]));
    for f in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        v.push(field_path(&["metadata", f]));
    }
    v
}

fn strip(set: &mut FieldSet) {
    for p in strip_set() {
        set.remove(&p);
    }
}

fn has_status_subresource(kind: &str) -> bool {
    matches!(
        kind,
        "Pod"
            | "Service"
            | "Node"
            | "Namespace"
            | "Deployment"
            | "ReplicaSet"
            | "Job"
            | "CronJob"
            | "DaemonSet"
            | "StatefulSet"
            | "ReplicationController"
            | "PodDisruptionBudget"
    )
}

/// The reset fields of the strategy (`GetResetFields`), as field names from the root: what a
/// write through this endpoint cannot change, so nobody gains or loses ownership of it there.
fn reset_field_names(kind: &str, subresource: Option<&str>) -> &'static [&'static [&'static str]] {
    match (subresource, kind) {
        (None, k) if has_status_subresource(k) => &[&["status"]],
        (
            Some("status"),
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "ReplicationController",
        ) => &[&["spec"], &["metadata", "labels"]],
        (Some("status"), "Pod") => &[
            &["spec"],
            &["metadata", "deletionTimestamp"],
            &["metadata", "ownerReferences"],
        ],
        (Some("status"), _) => &[&["spec"]],
        _ => &[],
    }
}

fn reset_fields(kind: &str, subresource: Option<&str>) -> Vec<Path> {
    reset_field_names(kind, subresource)
        .iter()
        .map(|names| field_path(names))
        .collect()
}

/// Carries the reset parts of `from` over to `to` (the strategy's PrepareForUpdate).
fn restore_reset(to: &mut Value, from: &Value, kind: &str, subresource: Option<&str>) {
    for names in reset_field_names(kind, subresource) {
        let Some((last, parents)) = names.split_last() else {
            continue;
        };
        let source = parents
            .iter()
            .try_fold(from, |v, n| v.get(*n))
            .and_then(|v| v.get(*last));
        let mut target = Some(&mut *to);
        for n in parents {
            target = target.and_then(|v| v.get_mut(*n));
        }
        let Some(m) = target.and_then(Value::as_object_mut) else {
            continue;
        };
        match source {
            Some(v) => {
                m.insert((*last).to_string(), v.clone());
            }
            None => {
                m.remove(*last);
            }
        }
    }
}

/// Server-set metadata an apply configuration cannot change on an existing object.
const SERVER_META: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

fn gvk_string(api_version: &str, kind: &str) -> String {
    // Go's GroupVersionKind.String(): "group/version, Kind=kind", "/v1, Kind=Pod" for core.
    let gv = if api_version.contains('/') {
        api_version.to_string()
    } else {
        format!("/{api_version}")
    };
    format!("{gv}, Kind={kind}")
}

/// `objectGVKNN` of the applied object, as kube prefixes its typed-conversion errors.
fn gvknn(applied: &Value, api_version: &str, kind: &str) -> String {
    let meta = applied.get("metadata");
    let field = |f: &str| {
        meta.and_then(|m| m.get(f))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    format!(
        "{}/{}; {}",
        field("namespace"),
        field("name"),
        gvk_string(api_version, kind)
    )
}

fn validate_applied(api_version: &str, kind: &str, applied: &Value) -> Result<(), ApplyError> {
    let obj = applied.as_object().ok_or_else(|| {
        ApplyError::Invalid(format!(
            "error decoding YAML: expected an object, got {}",
            describe(applied)
        ))
    })?;
    // versionCheckManager: the body's group/version/kind must be the endpoint's.
    let patch_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let patch_kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if patch_version != api_version || patch_kind != kind {
        return Err(ApplyError::Invalid(format!(
            "invalid object type: {}",
            gvk_string(patch_version, patch_kind)
        )));
    }
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str);
    if name.is_none_or(str::is_empty) {
        return Err(ApplyError::Invalid(
            "metadata.name: Required value: name is required".into(),
        ));
    }
    let managed = obj.get("metadata").and_then(|m| m.get("managedFields"));
    if managed.is_some_and(|m| !m.is_null()) {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    Ok(())
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The manager whose applies kube reconciles with client-side apply's annotation.
const KUBECTL: &str = "kubectl";
/// skipNonAppliedManager's owner of everything set before the first apply.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// A conflict before it is printed.
struct RawConflict {
    id: String,
    path: Path,
    printed: String,
}

fn conflict_error(mut conflicts: Vec<RawConflict>) -> ApplyError {
    // Grouped by manager identifier (kube sorts the managers' identifiers), each manager's
    // paths in the order its field set iterates.
    conflicts.sort_by(|a, b| {
        a.id.cmp(&b.id)
            .then_with(|| iterate_order(&a.path, &b.path))
    });
    ApplyError::Conflict {
        conflicts: conflicts
            .into_iter()
            .map(|c| Conflict {
                manager: c.printed,
                field: path_string(&c.path),
            })
            .collect(),
    }
}

/// Everything `apply_once` needs that does not change between the forced and unforced tries.
struct ApplyCtx<'a> {
    schema: &'a Schema,
    kind: &'a str,
    api_version: &'a str,
    creating: bool,
    live: &'a Value,
    applied: &'a Value,
    config_set: &'a FieldSet,
    ignored: &'a [Path],
    opts: &'a ApplyOptions<'a>,
}

/// structured-merge-diff's `Updater.Apply` and the apiserver's handling of its result.
fn apply_once(
    cx: &ApplyCtx,
    mut managers: Managers,
    force: bool,
) -> Result<Value, Vec<RawConflict>> {
    let (schema, live, opts) = (cx.schema, cx.live, cx.opts);
    let mut merged = merge(schema, live, cx.applied, "");
    if let (Some(mm), Some(lm)) = (
        merged.get_mut("metadata").and_then(Value::as_object_mut),
        live.get("metadata").and_then(Value::as_object),
    ) {
        for f in SERVER_META {
            match lm.get(*f) {
                Some(v) => {
                    mm.insert((*f).into(), v.clone());
                }
                None => {
                    mm.remove(*f);
                }
            }
        }
    }
    if !cx.creating {
        restore_reset(&mut merged, live, cx.kind, opts.subresource);
    } else if let Some(m) = merged.as_object_mut() {
        // On create the reset parts start empty, as the strategy's PrepareForCreate makes them.
        if has_status_subresource(cx.kind) && opts.subresource.is_none() {
            m.remove("status");
        }
    }

    let id = manager_id(opts.manager, true, cx.api_version, opts.subresource);
    let previous = managers.remove(&id);
    let last_set = previous.as_ref().map(|e| e.set.clone()).unwrap_or_default();
    if !last_set.is_empty() {
        let mut keep = cx.config_set.clone();
        for e in managers.values() {
            keep.extend(e.set.iter().cloned());
        }
        prune(schema, &mut merged, "", &mut Vec::new(), &last_set, &keep);
    }

    // Compared as kube's typed objects: with the always-present fields.
    let skeleton = empty_object(cx.kind);
    let mut live_full = live.clone();
    fill_missing(&mut live_full, &skeleton);
    let mut merged_full = merged.clone();
    fill_missing(&mut merged_full, &skeleton);
    let mut cmp = Comparison::default();
    compare(
        schema,
        Some(&live_full),
        Some(&merged_full),
        "",
        &mut Vec::new(),
        &mut cmp,
    );
    cmp.filter(cx.ignored);
    let changed = cmp.changed();

    if !force {
        let mut conflicts = Vec::new();
        for (mid, e) in &managers {
            for p in e.set.intersection(&changed) {
                conflicts.push(RawConflict {
                    id: mid.clone(),
                    path: p.clone(),
                    printed: e.printed(),
                });
            }
        }
        if !conflicts.is_empty() {
            return Err(conflicts);
        }
    }
    for e in managers.values_mut() {
        e.set
            .retain(|p| !changed.contains(p) && !cmp.removed.contains(p));
        strip(&mut e.set);
    }
    managers.retain(|_, e| !e.set.is_empty());

    // A no-op apply leaves the applier's time alone (kube's Updater returns no object then,
    // and managedFieldsUpdater only stamps a changed object).
    let time = if merged == *live {
        previous.and_then(|p| p.time)
    } else {
        Some(opts.now.to_string())
    };
    managers.insert(
        id,
        Entry {
            manager: opts.manager.to_string(),
            apply: true,
            api_version: cx.api_version.to_string(),
            time,
            subresource: opts.subresource.map(str::to_string),
            set: cx.config_set.clone(),
        },
    );
    encode_managers(&mut merged, &managers);
    Ok(merged)
}

fn last_applied_annotation(obj: &Value) -> Option<&str> {
    obj.get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// lastAppliedManager: for "kubectl", fields recorded in the client-side apply annotation with
/// the value they still have may be taken over without a conflict.
fn allowed_from_last_applied(schema: &Schema, live: &Value) -> FieldSet {
    let Some(text) = last_applied_annotation(live) else {
        return FieldSet::new();
    };
    let Ok(last) = serde_json::from_str::<Value>(text) else {
        return FieldSet::new();
    };
    let mut set = FieldSet::new();
    if !last.is_object() || to_field_set(schema, &last, "", &mut Vec::new(), &mut set).is_err() {
        return FieldSet::new();
    }
    let mut cmp = Comparison::default();
    compare(
        schema,
        Some(&last),
        Some(live),
        "",
        &mut Vec::new(),
        &mut cmp,
    );
    set.retain(|p| !cmp.modified.contains(p) && !cmp.added.contains(p) && !cmp.removed.contains(p));
    set
}

/// JSON as Go's encoding/json writes an unstructured object: keys sorted, `<>&` escaped.
fn go_json(v: &Value) -> String {
    let out = crate::machinery::patch::canon(v);
    // These characters only occur inside JSON strings, so replacing them everywhere is safe.
    out.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// lastAppliedUpdater: a "kubectl" server-side apply keeps an existing client-side apply
/// annotation in step with what was applied, so a later client-side apply diffs correctly.
fn update_last_applied(result: &mut Value, applied: &Value) {
    if last_applied_annotation(result).is_none() {
        return;
    }
    let mut copy = applied.clone();
    if let Some(a) = copy
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
    }
    let text = format!("{}\n", go_json(&copy));
    if let Some(a) = result
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        a.insert(LAST_APPLIED.into(), Value::String(text));
    }
}

// ---------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------

/// current = stored object (None when apply creates it); applied = the parsed body (YAML already
/// turned into JSON by the caller). Returns the new object including metadata.managedFields
/// updated (operation "Apply"). Preconditions (resourceVersion, name vs URL), defaulting and
/// validation of the result are the caller's.
pub fn server_side_apply(
    api_version: &str,
    kind: &str,
    current: Option<&serde_json::Value>,
    applied: &serde_json::Value,
    opts: &ApplyOptions,
) -> Result<serde_json::Value, ApplyError> {
    validate_applied(api_version, kind, applied)?;
    let schema = Schema::for_kind(kind);
    let ignored = reset_fields(kind, opts.subresource);

    let mut config_set = FieldSet::new();
    to_field_set(&schema, applied, "", &mut Vec::new(), &mut config_set).map_err(|e| {
        ApplyError::Invalid(format!(
            "failed to create typed patch object ({}): {e}",
            gvknn(applied, api_version, kind)
        ))
    })?;
    remove_under(&mut config_set, &ignored);
    strip(&mut config_set);

    let live = match current {
        Some(c) if c.is_object() => without_managed_fields(c),
        _ => Value::Object(Map::new()),
    };
    let mut managers = current
        .and_then(|c| decode_managers(c.get("metadata").and_then(|m| m.get("managedFields"))))
        .unwrap_or_default();
    if current.is_some() && managers.is_empty() {
        // skipNonAppliedManager: what an untracked object already holds becomes
        // "before-first-apply"'s, so the first apply cannot silently take it over.
        let skeleton = empty_object(kind);
        let mut filled = live.clone();
        fill_missing(&mut filled, &skeleton);
        update_managers(
            &schema,
            &skeleton,
            &filled,
            &mut managers,
            BEFORE_FIRST_APPLY,
            api_version,
            opts.subresource,
            opts.now,
            &ignored,
        );
    }

    let cx = ApplyCtx {
        schema: &schema,
        kind,
        api_version,
        creating: current.is_none(),
        live: &live,
        applied,
        config_set: &config_set,
        ignored: &ignored,
        opts,
    };
    let mut result = match apply_once(&cx, managers.clone(), opts.force) {
        Ok(v) => v,
        Err(conflicts) if opts.manager == KUBECTL => {
            let allowed = allowed_from_last_applied(&schema, &live);
            let remaining: Vec<RawConflict> = conflicts
                .into_iter()
                .filter(|c| !allowed.contains(&c.path))
                .collect();
            if !remaining.is_empty() {
                return Err(conflict_error(remaining));
            }
            apply_once(&cx, managers, true).map_err(conflict_error)?
        }
        Err(conflicts) => return Err(conflict_error(conflicts)),
    };
    if opts.manager == KUBECTL {
        update_last_applied(&mut result, applied);
    }
    Ok(result)
}

/// What a fresh Go object of the kind looks like after `ToUnstructured`: the non-pointer
/// structs and non-omitempty fields that exist before anything is set. Comparing a create
/// against it (instead of against nothing) is what keeps `.` off `f:spec` and `f:containers`
/// while `f:labels` and container elements get it.
fn empty_object(kind: &str) -> Value {
    let pod_spec = serde_json::json!({"containers": null});
    let template = serde_json::json!({"metadata": {"creationTimestamp": null}, "spec": pod_spec});
    let mut v = serde_json::json!({"metadata": {"creationTimestamp": null}});
    let extra = match kind {
        "Pod" => serde_json::json!({"spec": pod_spec, "status": {}}),
        "Deployment" => serde_json::json!({
            "spec": {"selector": null, "template": template, "strategy": {}},
            "status": {}
        }),
        "ReplicaSet" => serde_json::json!({
            "spec": {"selector": null, "template": template},
            "status": {"replicas": 0}
        }),
        "Service" => serde_json::json!({"spec": {}, "status": {"loadBalancer": {}}}),
        "Namespace" | "Node" => serde_json::json!({"spec": {}, "status": {}}),
        "Lease" => serde_json::json!({"spec": {}}),
        "Job" => serde_json::json!({"spec": {"template": template}, "status": {}}),
        "CronJob" => serde_json::json!({
            "spec": {"schedule": "", "jobTemplate": {"metadata": {"creationTimestamp": null},
                "spec": {"template": template}}},
            "status": {}
        }),
        "EndpointSlice" => serde_json::json!({"addressType": "", "endpoints": null}),
        "PodDisruptionBudget" => serde_json::json!({"spec": {}, "status": {
            "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}}),
        "DaemonSet" => serde_json::json!({
            "spec": {"selector": null, "template": template, "updateStrategy": {}},
            "status": {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                "desiredNumberScheduled": 0, "numberReady": 0}
        }),
        "StatefulSet" => serde_json::json!({
            "spec": {"selector": null, "template": template, "serviceName": "",
                "updateStrategy": {}},
            "status": {"replicas": 0, "availableReplicas": 0}
        }),
        "ControllerRevision" => serde_json::json!({"data": null, "revision": 0}),
        "ReplicationController" => serde_json::json!({"spec": {}, "status": {"replicas": 0}}),
        "Event" => serde_json::json!({
            "involvedObject": {},
            "source": {},
            "firstTimestamp": null,
            "lastTimestamp": null,
            "eventTime": null,
            "reportingComponent": "",
            "reportingInstance": ""
        }),
        _ => Value::Object(Map::new()),
    };
    if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    v
}

/// Fills what `skeleton` has and `v` lacks, recursively through objects.
fn fill_missing(v: &mut Value, skeleton: &Value) {
    if let (Some(m), Some(s)) = (v.as_object_mut(), skeleton.as_object()) {
        for (k, sv) in s {
            match m.get_mut(k) {
                Some(c) => fill_missing(c, sv),
                None => {
                    m.insert(k.clone(), sv.clone());
                }
            }
        }
    }
}

/// Whether the request body asks to reset managedFields (`[]` or `[{}]`).
fn is_reset_managed_fields(v: Option<&Value>) -> bool {
    match v.and_then(Value::as_array) {
        Some(l) if l.is_empty() => true,
        Some(l) => {
            l.len() == 1
                && l.first()
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty)
        }
        None => false,
    }
}

/// The Update half of structured-merge-diff's `Updater` as the apiserver drives it through
/// `managedFieldsUpdater`: every manager loses what changed or disappeared between `old` and
/// `new`, and `manager` (as an Update entry) gains what changed, stamped `now` if it gained
/// anything. Reset fields are nobody's business here.
#[allow(clippy::too_many_arguments)]
fn update_managers(
    schema: &Schema,
    old: &Value,
    new: &Value,
    managers: &mut Managers,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    now: &str,
    ignored: &[Path],
) {
    let mut cmp = Comparison::default();
    compare(schema, Some(old), Some(new), "", &mut Vec::new(), &mut cmp);
    cmp.filter(ignored);
    let changed = cmp.changed();

    for e in managers.values_mut() {
        e.set
            .retain(|p| !changed.contains(p) && !cmp.removed.contains(p));
    }
    managers.retain(|_, e| !e.set.is_empty());

    let mut own = changed;
    remove_under(&mut own, ignored);
    strip(&mut own);
    if !own.is_empty() {
        let id = manager_id(manager, false, api_version, subresource);
        let entry = managers.entry(id).or_insert_with(|| Entry {
            manager: manager.to_string(),
            apply: false,
            api_version: api_version.to_string(),
            time: None,
            subresource: subresource.map(str::to_string),
            set: FieldSet::new(),
        });
        entry.set.extend(own);
        entry.time = Some(now.to_string());
    }
}

/// kube's `DefaultMaxUpdateManagers`.
const MAX_UPDATE_MANAGERS: usize = 10;
/// kube's `DefaultOldUpdatesManagerName`.
const ANCIENT_CHANGES: &str = "ancient-changes";

/// `capManagersManager`: past ten Update entries, the oldest are folded, per apiVersion, into
/// an `ancient-changes` entry so managedFields cannot grow without bound.
fn cap_update_managers(managers: &mut Managers) {
    let mut updaters: Vec<(String, Option<String>)> = managers
        .iter()
        .filter(|(_, e)| !e.apply)
        .map(|(id, e)| (id.clone(), e.time.clone()))
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    // Oldest first; a missing time counts as the epoch, as in kube.
    updaters.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let mut first_by_version: BTreeMap<String, String> = BTreeMap::new();
    let mut length = updaters.len();
    for (id, _) in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(e) = managers.get(&id).cloned() else {
            continue;
        };
        let version = e.api_version.clone();
        let bucket = manager_id(ANCIENT_CHANGES, false, &version, None);
        let Some(first) = first_by_version.get(&version).cloned() else {
            first_by_version.insert(version, id);
            continue;
        };
        if !managers.contains_key(&bucket) {
            if let Some(mut f) = managers.remove(&first) {
                f.manager = ANCIENT_CHANGES.to_string();
                f.subresource = None;
                managers.insert(bucket.clone(), f);
            }
        }
        if id != bucket {
            managers.remove(&id);
        }
        if let Some(b) = managers.get_mut(&bucket) {
            b.set.extend(e.set);
            // The time of the update merged in, the more recent one.
            b.time = e.time;
        }
        length -= 1;
    }
}

/// For create/update/patch (not apply): update `new`'s metadata.managedFields with an "Update"
/// entry for `manager` owning the fields that changed from `old` (None on create), and take them
/// away from other managers, as kube's fieldmanager does. Managed fields sent in the body are
/// honoured on the main resource (`[]` or `[{}]` clears them), otherwise the stored ones carry
/// over. An existing object without managed fields stays untracked, as in kube.
pub fn record_update(
    api_version: &str,
    kind: &str,
    old: Option<&serde_json::Value>,
    new: &mut serde_json::Value,
    opts: &ApplyOptions,
) {
    if !new.is_object() {
        return;
    }
    let schema = Schema::for_kind(kind);
    let ignored = reset_fields(kind, opts.subresource);
    let old_managed = old
        .and_then(|o| o.get("metadata"))
        .and_then(|m| m.get("managedFields"));
    let new_managed = new.get("metadata").and_then(|m| m.get("managedFields"));
    let from_old = || decode_managers(old_managed).unwrap_or_default();
    let mut managers = if opts.subresource.is_some() {
        from_old()
    } else if is_reset_managed_fields(new_managed) {
        Managers::new()
    } else {
        match decode_managers(new_managed) {
            Some(m) if !m.is_empty() => m,
            _ => from_old(),
        }
    };

    // skipNonAppliedManager: an existing object nobody tracks stays untracked (this is how
    // clients clear managedFields); a create is always tracked.
    if old.is_none() || !managers.is_empty() {
        // Both sides as kube's typed objects see them: with the always-present fields.
        let skeleton = empty_object(kind);
        let mut old_clean = match old {
            Some(o) if o.is_object() => without_managed_fields(o),
            _ => skeleton.clone(),
        };
        fill_missing(&mut old_clean, &skeleton);
        let mut new_clean = without_managed_fields(new);
        fill_missing(&mut new_clean, &skeleton);
        update_managers(
            &schema,
            &old_clean,
            &new_clean,
            &mut managers,
            opts.manager,
            api_version,
            opts.subresource,
            opts.now,
            &ignored,
        );
        cap_update_managers(&mut managers);
    }
    encode_managers(new, &managers);
}

#[cfg(test)]
mod tests;
