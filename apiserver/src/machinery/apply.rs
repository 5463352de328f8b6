//! Server-side apply (`PATCH` with `application/apply-patch+yaml`) and `metadata.managedFields`
//! bookkeeping for ordinary writes, over `serde_json::Value` objects.
//!
//! This follows sigs.k8s.io/structured-merge-diff (`fieldpath`, `typed` compare/merge/toFieldSet,
//! `merge/update.go`) and k8s.io/apiserver's `fieldmanager` wrappers (strip of server-set
//! metadata, reset fields, the "current-operation" trick of `managedFieldsUpdater`, the conflict
//! message of `internal/conflict.go`). It is our own code: only the behaviour is copied.
//!
//! Instead of kube's full OpenAPI schema, the structure of an object comes from its JSON shape
//! plus [`RULES`], a table of the list types (`x-kubernetes-list-type` map/set/atomic with their
//! list-map keys) and atomic maps/structs that matter for the kinds Mainstay serves. Every list
//! not in the table is atomic, as kube treats lists without a list type.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

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
// Schema table
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Rule {
    /// `x-kubernetes-list-type: map`; keys as in `x-kubernetes-list-map-keys`, with the schema
    /// defaults kube uses for a key an element omits (e.g. `protocol: TCP`).
    ListMap {
        keys: &'static [&'static str],
        defaults: &'static [(&'static str, &'static str)],
    },
    /// `x-kubernetes-list-type: set`.
    ListSet,
    /// `x-kubernetes-list-type: atomic` (also the default for lists not in the table; listed
    /// where kube says so explicitly, for documentation).
    ListAtomic,
    /// `x-kubernetes-map-type: atomic` / `+structType=atomic`: replaced and owned as a whole.
    MapAtomic,
}

const NAME: Rule = Rule::ListMap {
    keys: &["name"],
    defaults: &[],
};
const TYPE: Rule = Rule::ListMap {
    keys: &["type"],
    defaults: &[],
};
const IP: Rule = Rule::ListMap {
    keys: &["ip"],
    defaults: &[],
};

/// Scope of [`RULES`]: the Kubernetes 1.32 list types and atomic structs/maps of ObjectMeta,
/// PodSpec (+ Container), PodStatus, ServiceSpec/Status, NodeSpec/Status, NamespaceSpec/Status,
/// Deployment/ReplicaSet spec+status, Event and Endpoints (list types checked against
/// k8s-openapi 0.25's v1_32 merge strategies; multi-key lists and atomic structs from the Go
/// types' markers). Not covered, so granular: atomic structs below the ones listed (e.g. the
/// LocalObjectReference inlined in volume sources, label selectors inside affinity terms, which
/// sit in atomic lists anyway). ConfigMap, Secret and Lease have no lists; their maps are
/// granular.
///
/// Each row: (scope, path relative to the scope, rule). `[]` stands for "an element of the list".
/// Scopes: `meta` = an ObjectMeta, `podspec` = a PodSpec, `container` = a Container (also used
/// for init and ephemeral containers), `podstatus` = a PodStatus, otherwise a kind at the root.
const RULES: &[(&str, &str, Rule)] = &[
    ("meta", "finalizers", Rule::ListSet),
    (
        "meta",
        "ownerReferences",
        Rule::ListMap {
            keys: &["uid"],
            defaults: &[],
        },
    ),
    // OwnerReference is `+structType=atomic`: elements are owned whole, as `k:{"uid":..}: {}`.
    ("meta", "ownerReferences[]", Rule::MapAtomic),
    ("meta", "managedFields", Rule::ListAtomic),
    ("podspec", "containers", NAME),
    ("podspec", "initContainers", NAME),
    ("podspec", "ephemeralContainers", NAME),
    ("podspec", "volumes", NAME),
    ("podspec", "imagePullSecrets", NAME),
    ("podspec", "hostAliases", IP),
    ("podspec", "tolerations", Rule::ListAtomic),
    ("podspec", "readinessGates", Rule::ListAtomic),
    (
        "podspec",
        "topologySpreadConstraints",
        Rule::ListMap {
            keys: &["topologyKey", "whenUnsatisfiable"],
            defaults: &[],
        },
    ),
    ("podspec", "imagePullSecrets[]", Rule::MapAtomic),
    ("podspec", "nodeSelector", Rule::MapAtomic),
    (
        "podspec",
        "topologySpreadConstraints[].labelSelector",
        Rule::MapAtomic,
    ),
    ("podspec", "resourceClaims", NAME),
    ("podspec", "schedulingGates", NAME),
    (
        "podspec",
        "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
        Rule::MapAtomic,
    ),
    (
        "container",
        "ports",
        Rule::ListMap {
            keys: &["containerPort", "protocol"],
            defaults: &[("protocol", "TCP")],
        },
    ),
    ("container", "env", NAME),
    (
        "container",
        "env[].valueFrom.configMapKeyRef",
        Rule::MapAtomic,
    ),
    ("container", "env[].valueFrom.secretKeyRef", Rule::MapAtomic),
    ("container", "env[].valueFrom.fieldRef", Rule::MapAtomic),
    (
        "container",
        "env[].valueFrom.resourceFieldRef",
        Rule::MapAtomic,
    ),
    ("container", "envFrom", Rule::ListAtomic),
    (
        "container",
        "volumeMounts",
        Rule::ListMap {
            keys: &["mountPath"],
            defaults: &[],
        },
    ),
    (
        "container",
        "volumeDevices",
        Rule::ListMap {
            keys: &["devicePath"],
            defaults: &[],
        },
    ),
    ("container", "resizePolicy", Rule::ListAtomic),
    ("container", "resources.claims", NAME),
    ("podstatus", "conditions", TYPE),
    ("podstatus", "podIPs", IP),
    ("podstatus", "hostIPs", IP),
    ("podstatus", "containerStatuses", Rule::ListAtomic),
    ("podstatus", "initContainerStatuses", Rule::ListAtomic),
    ("podstatus", "ephemeralContainerStatuses", Rule::ListAtomic),
    ("podstatus", "resourceClaimStatuses", NAME),
    (
        "Service",
        "spec.ports",
        Rule::ListMap {
            keys: &["port", "protocol"],
            defaults: &[("protocol", "TCP")],
        },
    ),
    ("Service", "spec.selector", Rule::MapAtomic),
    ("Service", "spec.clusterIPs", Rule::ListAtomic),
    ("Service", "spec.externalIPs", Rule::ListAtomic),
    ("Service", "spec.ipFamilies", Rule::ListAtomic),
    ("Service", "spec.loadBalancerSourceRanges", Rule::ListAtomic),
    ("Service", "status.conditions", TYPE),
    ("Service", "status.loadBalancer.ingress", Rule::ListAtomic),
    ("Endpoints", "subsets", Rule::ListAtomic),
    ("Node", "spec.podCIDRs", Rule::ListSet),
    ("Node", "spec.taints", Rule::ListAtomic),
    ("Node", "status.conditions", TYPE),
    ("Node", "status.addresses", TYPE),
    ("Node", "status.images", Rule::ListAtomic),
    ("Node", "status.volumesInUse", Rule::ListAtomic),
    ("Node", "status.volumesAttached", Rule::ListAtomic),
    ("Node", "status.runtimeHandlers", Rule::ListAtomic),
    ("Namespace", "spec.finalizers", Rule::ListAtomic),
    ("Namespace", "status.conditions", TYPE),
    ("Deployment", "spec.selector", Rule::MapAtomic),
    ("Deployment", "status.conditions", TYPE),
    ("ReplicaSet", "spec.selector", Rule::MapAtomic),
    ("ReplicaSet", "status.conditions", TYPE),
    ("Event", "involvedObject", Rule::MapAtomic),
    ("Event", "related", Rule::MapAtomic),
];

/// The rules of one kind, keyed by absolute type path (`spec.template.spec.containers[].ports`).
struct Schema {
    rules: BTreeMap<String, Rule>,
}

fn join(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() {
        rel.to_string()
    } else {
        format!("{prefix}.{rel}")
    }
}

impl Schema {
    fn for_kind(kind: &str) -> Schema {
        let mut s = Schema {
            rules: BTreeMap::new(),
        };
        s.add_scope("meta", "metadata");
        match kind {
            "Pod" => {
                s.add_pod_spec("spec");
                s.add_scope("podstatus", "status");
            }
            "Deployment" | "ReplicaSet" => {
                s.add_scope("meta", "spec.template.metadata");
                s.add_pod_spec("spec.template.spec");
            }
            _ => {}
        }
        s.add_scope(kind, "");
        s
    }

    fn add_scope(&mut self, scope: &str, prefix: &str) {
        for (sc, rel, rule) in RULES {
            if *sc == scope {
                self.rules.insert(join(prefix, rel), *rule);
            }
        }
    }

    fn add_pod_spec(&mut self, prefix: &str) {
        self.add_scope("podspec", prefix);
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            self.add_scope("container", &format!("{}[]", join(prefix, list)));
        }
    }

    fn rule(&self, tp: &str) -> Option<Rule> {
        self.rules.get(tp).copied()
    }
}

fn child_tp(tp: &str, field: &str) -> String {
    join(tp, field)
}

fn item_tp(tp: &str) -> String {
    format!("{tp}[]")
}

// ---------------------------------------------------------------------------------------------
// Field paths and sets (sigs.k8s.io/structured-merge-diff/fieldpath)
// ---------------------------------------------------------------------------------------------

/// One step of a field path.
#[derive(Debug, Clone)]
enum Pe {
    Field(String),
    /// List-map element, by its key fields sorted by name (as `KeyByFields` sorts them).
    Key(Vec<(String, Value)>),
    /// Set element.
    Value(Value),
    Index(usize),
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// A total order on values close to structured-merge-diff's `value.Compare`
/// (numbers < strings < bools < lists < maps).
fn value_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => {
                let (f, g) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                f.partial_cmp(&g).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                let c = value_cmp(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

impl Pe {
    fn rank(&self) -> u8 {
        match self {
            Pe::Field(_) => 0,
            Pe::Key(_) => 1,
            Pe::Value(_) => 2,
            Pe::Index(_) => 3,
        }
    }

    /// `PathElement.String()`, used in conflict messages.
    fn display(&self) -> String {
        match self {
            Pe::Field(f) => format!(".{f}"),
            Pe::Key(kv) => {
                let parts: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", parts.join(","))
            }
            Pe::Value(v) => format!("[={v}]"),
            Pe::Index(i) => format!("[{i}]"),
        }
    }

    /// The key kube writes in `fieldsV1`.
    fn fields_v1_key(&self) -> String {
        match self {
            Pe::Field(f) => format!("f:{f}"),
            Pe::Key(kv) => {
                let parts: Vec<String> = kv
                    .iter()
                    .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
                    .collect();
                format!("k:{{{}}}", parts.join(","))
            }
            Pe::Value(v) => format!("v:{v}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    fn parse_fields_v1_key(s: &str) -> Option<Pe> {
        if let Some(f) = s.strip_prefix("f:") {
            return Some(Pe::Field(f.to_string()));
        }
        if let Some(k) = s.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(k).ok()?;
            let mut kv: Vec<(String, Value)> = m.into_iter().collect();
            kv.sort_by(|a, b| a.0.cmp(&b.0));
            return Some(Pe::Key(kv));
        }
        if let Some(v) = s.strip_prefix("v:") {
            return serde_json::from_str(v).ok().map(Pe::Value);
        }
        if let Some(i) = s.strip_prefix("i:") {
            return i.parse().ok().map(Pe::Index);
        }
        None
    }
}

impl Ord for Pe {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Pe::Field(a), Pe::Field(b)) => a.cmp(b),
            (Pe::Key(a), Pe::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b.iter()) {
                    let c = an.cmp(bn).then_with(|| value_cmp(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Pe::Value(a), Pe::Value(b)) => value_cmp(a, b),
            (Pe::Index(a), Pe::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Pe {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pe {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pe {}

type Path = Vec<Pe>;
/// A flat set of paths; lexicographic order puts every extension of a path right after it,
/// which makes "this path or anything under it" a range query.
type FieldSet = BTreeSet<Path>;

fn path_string(p: &[Pe]) -> String {
    p.iter().map(Pe::display).collect()
}

fn field_path(names: &[&str]) -> Path {
    names.iter().map(|n| Pe::Field((*n).to_string())).collect()
}

/// Whether `set` holds `p` or any path under it.
fn has_self_or_descendant(set: &FieldSet, p: &[Pe]) -> bool {
    set.range(p.to_vec()..)
        .next()
        .is_some_and(|q| q.starts_with(p))
}

/// Whether `set` holds a path strictly under `p`.
fn has_descendant(set: &FieldSet, p: &[Pe]) -> bool {
    set.range(p.to_vec()..)
        .find(|q| q.len() > p.len() || !q.starts_with(p))
        .is_some_and(|q| q.starts_with(p))
}

/// Drops every path at or under one of `prefixes` (kube's `RecursiveDifference` of reset fields).
fn remove_under(set: &mut FieldSet, prefixes: &[Path]) {
    set.retain(|p| !prefixes.iter().any(|pre| p.starts_with(pre)));
}

/// The order `Set.Iterate` visits paths: at each level the members first, then the children.
fn iterate_order(a: &[Pe], b: &[Pe]) -> Ordering {
    let n = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
    if n == a.len() || n == b.len() {
        return a.len().cmp(&b.len());
    }
    let (a_leaf, b_leaf) = (a.len() == n + 1, b.len() == n + 1);
    match (a_leaf, b_leaf) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a[n].cmp(&b[n]),
    }
}

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<Pe, Node>,
}

/// Serialises a set the way `fieldpath.Set.ToJSON` does: `.` for a node that is itself a member
/// and has children, `{}` for a member leaf, keys in path-element order (f:, k:, v:, i:).
fn set_to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Node::default();
    for p in set {
        let mut n = &mut root;
        for pe in p {
            n = n.children.entry(pe.clone()).or_default();
        }
        n.member = true;
    }
    fn render(n: &Node) -> Value {
        let mut m = Map::new();
        if n.member && !n.children.is_empty() {
            m.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (pe, c) in &n.children {
            m.insert(pe.fields_v1_key(), render(c));
        }
        Value::Object(m)
    }
    render(&root)
}

fn fields_v1_to_set(v: &Value) -> Option<FieldSet> {
    fn walk(v: &Value, path: &mut Path, out: &mut FieldSet) -> Option<()> {
        let m = v.as_object()?;
        for (k, c) in m {
            if k == "." {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
                continue;
            }
            path.push(Pe::parse_fields_v1_key(k)?);
            if c.as_object().is_some_and(Map::is_empty) {
                out.insert(path.clone());
            } else {
                walk(c, path, out)?;
            }
            path.pop();
        }
        Some(())
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out)?;
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Walks over values (typed/tofieldset.go, merge.go, compare.go, remove.go)
// ---------------------------------------------------------------------------------------------

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// The path element of a list element, or why it has none.
fn item_pe(rule: Rule, item: &Value) -> Result<Pe, String> {
    match rule {
        Rule::ListSet => Ok(Pe::Value(item.clone())),
        Rule::ListMap { keys, defaults } => {
            let m = item
                .as_object()
                .ok_or_else(|| format!("expected map, got {}", describe(item)))?;
            let mut kv = Vec::with_capacity(keys.len());
            for k in keys {
                let v = match m.get(*k).filter(|v| !v.is_null()) {
                    Some(v) => v.clone(),
                    None => match defaults.iter().find(|(dk, _)| dk == k) {
                        Some((_, d)) => Value::String((*d).to_string()),
                        None => {
                            return Err(format!(
                                "associative list with keys has an element that omits key field {:?} (and doesn't have default value)",
                                k
                            ))
                        }
                    },
                };
                kv.push(((*k).to_string(), v));
            }
            kv.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Pe::Key(kv))
        }
        Rule::ListAtomic | Rule::MapAtomic => Err("not an associative list".to_string()),
    }
}

/// Path elements of a stored list's elements, first occurrence only (as kube indexes them).
/// An element that has no key (which validation would have refused) is addressed by index so
/// that nothing here panics or loses it.
fn index_items(rule: Rule, items: &[Value]) -> Vec<(Pe, &Value)> {
    let mut out: Vec<(Pe, &Value)> = Vec::with_capacity(items.len());
    let mut seen: BTreeSet<Pe> = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let pe = item_pe(rule, item).unwrap_or(Pe::Index(i));
        if seen.insert(pe.clone()) {
            out.push((pe, item));
        }
    }
    out
}

/// `TypedValue.ToFieldSet` of the applied configuration; also its validation of associative
/// lists (missing keys, duplicates).
fn to_field_set(
    s: &Schema,
    v: &Value,
    tp: &str,
    path: &mut Path,
    out: &mut FieldSet,
) -> Result<(), String> {
    let rule = s.rule(tp);
    match rule {
        Some(Rule::ListAtomic) | Some(Rule::MapAtomic) => {
            out.insert(path.clone());
            return Ok(());
        }
        Some(r @ (Rule::ListMap { .. } | Rule::ListSet)) => {
            match v {
                Value::Array(items) => {
                    let mut seen: BTreeSet<Pe> = BTreeSet::new();
                    for (i, item) in items.iter().enumerate() {
                        let pe = item_pe(r, item)
                            .map_err(|e| format!("{}: element {i}: {e}", path_string(path)))?;
                        if !seen.insert(pe.clone()) {
                            return Err(format!(
                                "{}: duplicate entries for key {}",
                                path_string(path),
                                pe.display()
                            ));
                        }
                        path.push(pe);
                        to_field_set(s, item, &item_tp(tp), path, out)?;
                        out.insert(path.clone());
                        path.pop();
                    }
                }
                Value::Null => {}
                other => {
                    return Err(format!(
                        "{}: expected list, got {}",
                        path_string(path),
                        describe(other)
                    ))
                }
            }
            return Ok(());
        }
        None => {}
    }
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                path.push(Pe::Field(k.clone()));
                to_field_set(s, c, &child_tp(tp, k), path, out)?;
                if c.is_null() || c.as_object().is_some_and(Map::is_empty) {
                    out.insert(path.clone());
                }
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
    Ok(())
}

/// A new subtree without its null-valued fields: a typed round trip drops them.
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, c)| !c.is_null())
                .map(|(k, c)| (k.clone(), strip_nulls(c)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// `TypedValue.Merge(config)`: the configuration wins on leaves and atomics, structs and maps
/// are merged by field, associative lists by key (kube's ordering of merged elements).
fn merge(s: &Schema, l: &Value, r: &Value, tp: &str) -> Value {
    match s.rule(tp) {
        Some(Rule::ListAtomic) | Some(Rule::MapAtomic) => return strip_nulls(r),
        Some(rule @ (Rule::ListMap { .. } | Rule::ListSet)) => {
            return match (l, r) {
                (Value::Array(li), Value::Array(ri)) => merge_list(s, rule, li, ri, tp),
                _ => strip_nulls(r),
            }
        }
        None => {}
    }
    match (l, r) {
        (Value::Object(lm), Value::Object(rm)) => {
            if lm.is_empty() && rm.is_empty() {
                return r.clone();
            }
            let mut out = lm.clone();
            for (k, rv) in rm {
                if rv.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = match lm.get(k) {
                    Some(lv) => merge(s, lv, rv, &child_tp(tp, k)),
                    None => strip_nulls(rv),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        _ => strip_nulls(r),
    }
}

/// The element order of structured-merge-diff's `visitListItems`: the configuration's order,
/// with live-only elements kept where they were relative to the shared ones.
fn merge_list(s: &Schema, rule: Rule, li: &[Value], ri: &[Value], tp: &str) -> Value {
    let lhs = index_items(rule, li);
    let rhs = index_items(rule, ri);
    let find = |list: &[(Pe, &Value)], pe: &Pe| -> Option<usize> {
        list.iter().position(|(p, _)| p == pe)
    };
    let shared: Vec<Pe> = rhs
        .iter()
        .filter(|(pe, _)| find(&lhs, pe).is_some())
        .map(|(pe, _)| pe.clone())
        .collect();
    let mut shared_iter = shared.into_iter();
    let mut next_shared = shared_iter.next();
    let itp = item_tp(tp);
    let mut out = Vec::with_capacity(li.len().max(ri.len()));
    let (mut i, mut j) = (0usize, 0usize);
    while i < lhs.len() || j < rhs.len() {
        if let (Some((lpe, lv)), Some((rpe, rv))) = (lhs.get(i), rhs.get(j)) {
            if lpe == rpe {
                out.push(merge(s, lv, rv, &itp));
                i += 1;
                j += 1;
                next_shared = shared_iter.next();
                continue;
            }
            if find(&rhs, lpe).is_some() && next_shared.as_ref().is_some_and(|n| n != lpe) {
                i += 1;
                continue;
            }
        }
        if let Some((lpe, lv)) = lhs.get(i) {
            if find(&rhs, lpe).is_none() {
                out.push((*lv).clone());
                i += 1;
                continue;
            }
        }
        if let Some((rpe, rv)) = rhs.get(j) {
            let merged = match find(&lhs, rpe).and_then(|k| lhs.get(k)) {
                Some((_, lv)) => merge(s, lv, rv, &itp),
                None => strip_nulls(rv),
            };
            out.push(merged);
            j += 1;
            if next_shared.as_ref().is_some_and(|n| n == rpe) {
                next_shared = shared_iter.next();
            }
        }
    }
    Value::Array(out)
}

#[derive(Default, Debug)]
struct Comparison {
    added: FieldSet,
    removed: FieldSet,
    modified: FieldSet,
}

impl Comparison {
    fn changed(&self) -> FieldSet {
        self.added.union(&self.modified).cloned().collect()
    }

    fn filter(&mut self, ignored: &[Path]) {
        remove_under(&mut self.added, ignored);
        remove_under(&mut self.removed, ignored);
        remove_under(&mut self.modified, ignored);
    }
}

fn empty_or_absent(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// `TypedValue.Compare`: leaves are added/removed/modified; every map and list element that
/// appears or disappears is itself added/removed too (kube's post-item hook), which is where
/// the `.` entries of Update managers come from.
fn compare(
    s: &Schema,
    l: Option<&Value>,
    r: Option<&Value>,
    tp: &str,
    path: &mut Path,
    c: &mut Comparison,
) {
    let rule = s.rule(tp);
    let leaf = |c: &mut Comparison, path: &Path| match (l, r) {
        (None, None) => {}
        (None, Some(_)) => {
            c.added.insert(path.clone());
        }
        (Some(_), None) => {
            c.removed.insert(path.clone());
        }
        (Some(a), Some(b)) => {
            if a != b {
                c.modified.insert(path.clone());
            }
        }
    };
    let hook = |c: &mut Comparison, path: &Path| {
        if path.is_empty() {
            return;
        }
        if l.is_none() {
            c.added.insert(path.clone());
        } else if r.is_none() {
            c.removed.insert(path.clone());
        }
    };
    let is_list = |v: Option<&Value>| matches!(v, None | Some(Value::Null) | Some(Value::Array(_)));
    let is_map = |v: Option<&Value>| matches!(v, None | Some(Value::Null) | Some(Value::Object(_)));
    match rule {
        Some(Rule::ListAtomic) | Some(Rule::MapAtomic) => leaf(c, path),
        Some(r_ @ (Rule::ListMap { .. } | Rule::ListSet)) => {
            if !is_list(l) || !is_list(r) || (empty_or_absent(l) && empty_or_absent(r)) {
                return leaf(c, path);
            }
            let empty: Vec<Value> = Vec::new();
            let li = index_items(r_, l.and_then(Value::as_array).unwrap_or(&empty));
            let ri = index_items(r_, r.and_then(Value::as_array).unwrap_or(&empty));
            let itp = item_tp(tp);
            for (pe, lv) in &li {
                let rv = ri.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
                path.push(pe.clone());
                compare(s, Some(lv), rv, &itp, path, c);
                path.pop();
            }
            for (pe, rv) in &ri {
                if li.iter().any(|(p, _)| p == pe) {
                    continue;
                }
                path.push(pe.clone());
                compare(s, None, Some(rv), &itp, path, c);
                path.pop();
            }
            hook(c, path);
        }
        None => {
            if !is_map(l) || !is_map(r) || (empty_or_absent(l) && empty_or_absent(r)) {
                return leaf(c, path);
            }
            let lm = l.and_then(Value::as_object);
            let rm = r.and_then(Value::as_object);
            let mut keys: BTreeSet<&String> = BTreeSet::new();
            keys.extend(lm.iter().flat_map(|m| m.keys()));
            keys.extend(rm.iter().flat_map(|m| m.keys()));
            for k in keys {
                path.push(Pe::Field(k.clone()));
                compare(
                    s,
                    lm.and_then(|m| m.get(k)),
                    rm.and_then(|m| m.get(k)),
                    &child_tp(tp, k),
                    path,
                    c,
                );
                path.pop();
            }
            hook(c, path);
        }
    }
}

/// `Updater.prune`: removes what the applier owned last time, no longer applies, and nobody
/// else (nor the new configuration) owns. Named fields on the way to an owned path count as
/// owned by it (`EnsureNamedFieldsAreMembers`).
fn prune(s: &Schema, v: &mut Value, tp: &str, path: &mut Path, last: &FieldSet, keep: &FieldSet) {
    let removable = |p: &Path| -> bool {
        let in_last =
            last.contains(p) || (matches!(p.last(), Some(Pe::Field(_))) && has_descendant(last, p));
        in_last && !has_self_or_descendant(keep, p)
    };
    let rule = s.rule(tp);
    match (rule, v) {
        (Some(Rule::ListAtomic) | Some(Rule::MapAtomic), _) => {}
        (Some(r @ (Rule::ListMap { .. } | Rule::ListSet)), Value::Array(items)) => {
            let itp = item_tp(tp);
            let mut kept = Vec::with_capacity(items.len());
            for (i, mut item) in std::mem::take(items).into_iter().enumerate() {
                path.push(item_pe(r, &item).unwrap_or(Pe::Index(i)));
                if !removable(path) {
                    prune(s, &mut item, &itp, path, last, keep);
                    kept.push(item);
                }
                path.pop();
            }
            *items = kept;
        }
        (None, Value::Object(m)) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                path.push(Pe::Field(k.clone()));
                if removable(path) {
                    m.remove(&k);
                } else if let Some(c) = m.get_mut(&k) {
                    prune(s, c, &child_tp(tp, &k), path, last, keep);
                }
                path.pop();
            }
        }
        _ => {}
    }
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
        "Pod" | "Service" | "Node" | "Namespace" | "Deployment" | "ReplicaSet"
    )
}

/// The reset fields of the strategy (`GetResetFields`), as field names from the root: what a
/// write through this endpoint cannot change, so nobody gains or loses ownership of it there.
fn reset_field_names(kind: &str, subresource: Option<&str>) -> &'static [&'static [&'static str]] {
    match (subresource, kind) {
        (None, k) if has_status_subresource(k) => &[&["status"]],
        (Some("status"), "Deployment" | "ReplicaSet") => &[&["spec"], &["metadata", "labels"]],
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
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    if let Some(c) = m.get(k) {
                        write(c, out);
                    }
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, c) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(c, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
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
mod tests {
    use super::*;
    use serde_json::json;

    const T1: &str = "2026-11-24T02:00:00Z";
    const T2: &str = "2026-11-24T02:05:00Z";

    fn opts<'a>(manager: &'a str, force: bool, now: &'a str) -> ApplyOptions<'a> {
        ApplyOptions {
            manager,
            force,
            now,
            subresource: None,
        }
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": image,
                        "ports": [{"containerPort": 80}]}]}
                }
            }
        })
    }

    fn entries(obj: &Value) -> Vec<Value> {
        obj["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn entry<'a>(list: &'a [Value], manager: &str) -> &'a Value {
        list.iter()
            .find(|e| e["manager"] == manager)
            .unwrap_or_else(|| panic!("no entry for {manager} in {list:?}"))
    }

    fn apply(
        current: Option<&Value>,
        applied: &Value,
        o: &ApplyOptions,
    ) -> Result<Value, ApplyError> {
        server_side_apply("apps/v1", "Deployment", current, applied, o)
    }

    #[test]
    fn create_by_apply_writes_kube_fields_v1() {
        let out = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        let list = entries(&out);
        assert_eq!(list.len(), 1);
        assert_eq!(
            list[0],
            json!({
                "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                "time": T1, "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:selector": {},
                        "f:template": {
                            "f:metadata": {"f:labels": {"f:app": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                                ".": {}, "f:image": {}, "f:name": {},
                                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                    ".": {}, "f:containerPort": {}
                                }}
                            }}}
                        }
                    }
                }
            })
        );
        // The key text is kube's, in kube's key order.
        assert_eq!(
            Pe::Key(vec![
                ("containerPort".into(), json!(80)),
                ("protocol".into(), json!("TCP"))
            ])
            .fields_v1_key(),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
    }

    #[test]
    fn reapply_unchanged_is_a_no_op() {
        let first = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
        let second = apply(
            Some(&first),
            &deploy(3, "nginx:1"),
            &opts("kubectl", false, T2),
        )
        .unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn apply_removes_fields_it_stopped_setting() {
        let mut cfg = deploy(3, "nginx:1");
        cfg["metadata"]["labels"]["tier"] = json!("front");
        cfg["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "busybox"}));
        let first = apply(None, &cfg, &opts("kubectl", false, T1)).unwrap();
        assert_eq!(
            first["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let mut cfg2 = deploy(3, "nginx:1");
        cfg2["spec"].as_object_mut().unwrap().remove("replicas");
        let out = apply(Some(&first), &cfg2, &opts("kubectl", false, T2)).unwrap();
        assert!(out["spec"].get("replicas").is_none());
        assert!(out["metadata"]["labels"].get("tier").is_none());
        assert_eq!(out["metadata"]["labels"]["app"], "web");
        let containers = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0]["name"], "nginx");
        assert_eq!(entries(&out)[0]["time"], T2);
        assert!(entries(&out)[0]["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none());
    }

    #[test]
    fn field_kept_when_another_manager_owns_it() {
        let a = apply(None, &deploy(3, "nginx:1"), &opts("a", false, T1)).unwrap();
        let b = apply(Some(&a), &deploy(3, "nginx:1"), &opts("b", false, T1)).unwrap();
        assert_eq!(entries(&b).len(), 2, "shared ownership of equal values");
        let mut cfg = deploy(3, "nginx:1");
        cfg["spec"].as_object_mut().unwrap().remove("replicas");
        let out = apply(Some(&b), &cfg, &opts("a", false, T2)).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
    }

    #[test]
    fn conflict_between_two_appliers_and_force() {
        let a = apply(None, &deploy(3, "nginx:1"), &opts("a", false, T1)).unwrap();
        let err = apply(Some(&a), &deploy(5, "nginx:1"), &opts("b", false, T2)).unwrap_err();
        assert_eq!(
            err.message(),
            r#"Apply failed with 1 conflict: conflict with "a": .spec.replicas"#
        );
        let err = apply(Some(&a), &deploy(5, "nginx:2"), &opts("b", false, T2)).unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
        );
        let out = apply(Some(&a), &deploy(5, "nginx:1"), &opts("b", true, T2)).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        let list = entries(&out);
        assert!(entry(&list, "a")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none());
        assert!(entry(&list, "b")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_some());
        // The loser no longer conflicts: b owns replicas now.
        let err = apply(Some(&out), &deploy(3, "nginx:1"), &opts("a", false, T2)).unwrap_err();
        assert_eq!(
            err.message(),
            r#"Apply failed with 1 conflict: conflict with "b": .spec.replicas"#
        );
    }

    #[test]
    fn scale_update_then_apply_conflicts() {
        let a = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
        let mut scaled = a.clone();
        scaled["spec"]["replicas"] = json!(10);
        let o = ApplyOptions {
            manager: "kubectl",
            force: false,
            now: T2,
            subresource: Some("scale"),
        };
        record_update("apps/v1", "Deployment", Some(&a), &mut scaled, &o);
        let list = entries(&scaled);
        let upd = list.iter().find(|e| e["operation"] == "Update").unwrap();
        assert_eq!(
            upd,
            &json!({"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1",
                "time": T2, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}}}, "subresource": "scale"})
        );
        let err = apply(
            Some(&scaled),
            &deploy(3, "nginx:1"),
            &opts("kubectl", false, T2),
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            r#"Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas"#
        );
        match err {
            ApplyError::Conflict { conflicts } => assert_eq!(conflicts[0].field, ".spec.replicas"),
            other => panic!("{other:?}"),
        }
        // Applying the scaled value is no conflict (equal value).
        assert!(apply(
            Some(&scaled),
            &deploy(10, "nginx:1"),
            &opts("kubectl", false, T2)
        )
        .is_ok());
    }

    #[test]
    fn record_update_on_create_matches_kube_shape() {
        let mut obj = deploy(3, "nginx:1");
        obj["metadata"]["uid"] = json!("u1");
        obj["metadata"]["resourceVersion"] = json!("5");
        obj["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}});
        obj["status"] = json!({"replicas": 0});
        record_update(
            "apps/v1",
            "Deployment",
            None,
            &mut obj,
            &opts("kubectl-create", false, T1),
        );
        let list = entries(&obj);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["operation"], "Update");
        assert_eq!(
            list[0]["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}},
                    "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:containerPort": {}
                            }}
                        }}}
                    }
                }
            })
        );
    }

    #[test]
    fn record_update_takes_fields_from_appliers_and_keeps_others() {
        let a = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
        let mut edited = a.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        record_update(
            "apps/v1",
            "Deployment",
            Some(&a),
            &mut edited,
            &opts("kubectl-edit", false, T2),
        );
        let list = entries(&edited);
        assert_eq!(list[0]["manager"], "kubectl", "Apply sorts before Update");
        let c = &list[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"nginx\"}"];
        assert!(c.get("f:image").is_none());
        assert!(c.get("f:name").is_some());
        assert_eq!(list[1]["manager"], "kubectl-edit");
        // An update that changes nothing adds no entry.
        let mut same = edited.clone();
        record_update(
            "apps/v1",
            "Deployment",
            Some(&edited),
            &mut same,
            &opts("other", false, T2),
        );
        assert_eq!(same, edited);
        // The status of the main resource is nobody's there.
        let mut st = edited.clone();
        st["status"] = json!({"replicas": 3});
        record_update(
            "apps/v1",
            "Deployment",
            Some(&edited),
            &mut st,
            &opts("ctrl", false, T2),
        );
        assert!(entries(&st).iter().all(|e| e["manager"] != "ctrl"));
        // Reset by sending an empty list.
        let mut reset = edited.clone();
        reset["metadata"]["managedFields"] = json!([]);
        record_update(
            "apps/v1",
            "Deployment",
            Some(&edited),
            &mut reset,
            &opts("x", false, T2),
        );
        assert!(reset["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn list_map_merge_across_managers() {
        let a = apply(None, &deploy(3, "nginx:1"), &opts("a", false, T1)).unwrap();
        let b_cfg = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "envoy"},
                {"name": "nginx", "env": [{"name": "A", "value": "1"}]}
            ]}}}
        });
        let out = apply(Some(&a), &b_cfg, &opts("b", false, T2)).unwrap();
        let cs = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0]["name"], "sidecar");
        assert_eq!(cs[1]["name"], "nginx");
        assert_eq!(cs[1]["image"], "nginx:1");
        assert_eq!(cs[1]["env"][0]["value"], "1");
        assert_eq!(out["spec"]["replicas"], 3);
        let list = entries(&out);
        let bc = &entry(&list, "b")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"];
        assert!(bc["k:{\"name\":\"nginx\"}"]["f:env"]["k:{\"name\":\"A\"}"]
            .get("f:value")
            .is_some());
        // a stops applying nginx: b still owns the element, so it stays, without a's image.
        let a_cfg = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}
        });
        let out2 = apply(Some(&out), &a_cfg, &opts("a", false, T2)).unwrap();
        let cs = out2["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(cs.len(), 2);
        assert!(cs[1].get("image").is_none());
        assert_eq!(cs[1]["env"][0]["name"], "A");
    }

    #[test]
    fn sets_and_service_ports() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "finalizers": ["x/y"]},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "UDP"}, {"port": 80}]}
        });
        let out = server_side_apply("v1", "Service", None, &svc, &opts("m", false, T1)).unwrap();
        let f = &entries(&out)[0]["fieldsV1"];
        assert_eq!(f["f:metadata"]["f:finalizers"], json!({"v:\"x/y\"": {}}));
        assert_eq!(f["f:spec"]["f:selector"], json!({}));
        let ports = f["f:spec"]["f:ports"].as_object().unwrap();
        assert!(ports.contains_key(r#"k:{"port":80,"protocol":"TCP"}"#));
        assert!(ports.contains_key(r#"k:{"port":80,"protocol":"UDP"}"#));
    }

    #[test]
    fn bad_input_is_invalid_not_panic() {
        let o = opts("m", false, T1);
        let cases = [
            json!("string"),
            json!([1, 2]),
            json!({"kind": "Deployment", "metadata": {"name": "x"}}),
            json!({"apiVersion": "apps/v1", "metadata": {"name": "x"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": 5}}),
            json!({"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "x"}}),
            json!({"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "x"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "managedFields": []}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                "spec": {"template": {"spec": {"containers": "nope"}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                "spec": {"template": {"spec": {"containers": [3]}}}}),
        ];
        for c in &cases {
            match apply(None, c, &o) {
                Err(ApplyError::Invalid(msg)) => assert!(!msg.is_empty()),
                other => panic!("{c}: {other:?}"),
            }
        }
        match apply(None, &cases[11], &o) {
            Err(e) => assert_eq!(
                e.message(),
                r#"failed to create typed patch object (/x; apps/v1, Kind=Deployment): .spec.template.spec.containers: duplicate entries for key [name="a"]"#
            ),
            Ok(v) => panic!("{v}"),
        }
        // Garbage in the stored object: no panic either.
        let weird = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "managedFields": [{"operation": "Bogus"}], "labels": 7},
            "spec": {"template": {"spec": {"containers": [1, {"x": 2}, {"name": "nginx"}]}}}});
        let forced = opts("m", true, T1);
        let out = apply(Some(&weird), &deploy(1, "n"), &forced).unwrap();
        assert_eq!(out["spec"]["replicas"], 1);
        let mut w2 = weird.clone();
        record_update("apps/v1", "Deployment", Some(&deploy(1, "n")), &mut w2, &o);
        let mut scalar = json!(5);
        record_update("apps/v1", "Deployment", None, &mut scalar, &o);
    }

    #[test]
    fn fields_v1_round_trip_and_iterate_order() {
        let v = json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"n\"}": {".": {}, "f:image": {}}},
                "f:podCIDRs": {"v:\"10.0.0.0/24\"": {}}}});
        let set = fields_v1_to_set(&v).unwrap();
        assert_eq!(set_to_fields_v1(&set), v);
        let mut paths: Vec<&Path> = set.iter().collect();
        paths.sort_by(|a, b| iterate_order(a, b));
        let shown: Vec<String> = paths.iter().map(|p| path_string(p)).collect();
        assert_eq!(
            shown,
            vec![
                ".metadata.labels",
                ".metadata.labels.a",
                ".spec.containers[name=\"n\"]",
                ".spec.containers[name=\"n\"].image",
                ".spec.podCIDRs[=\"10.0.0.0/24\"]",
            ]
        );
    }

    #[test]
    fn version_or_kind_mismatch_message() {
        let mut cfg = deploy(1, "n");
        cfg["apiVersion"] = json!("apps/v1beta1");
        let err = apply(None, &cfg, &opts("m", false, T1)).unwrap_err();
        assert_eq!(
            err.message(),
            "invalid object type: apps/v1beta1, Kind=Deployment"
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        let err =
            server_side_apply("v1", "Service", None, &pod, &opts("m", false, T1)).unwrap_err();
        assert_eq!(err.message(), "invalid object type: /v1, Kind=Pod");
    }

    #[test]
    fn untracked_object_gets_before_first_apply() {
        let mut live = deploy(3, "nginx:1");
        live["metadata"]["uid"] = json!("u1");
        let err = apply(Some(&live), &deploy(4, "nginx:1"), &opts("helm", false, T2)).unwrap_err();
        assert_eq!(
            err.message(),
            r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas"#
        );
        let out = apply(Some(&live), &deploy(3, "nginx:1"), &opts("helm", false, T2)).unwrap();
        let list = entries(&out);
        assert_eq!(list.len(), 2);
        assert_eq!(entry(&list, "before-first-apply")["operation"], "Update");
        assert_eq!(out["metadata"]["uid"], "u1");
        // An update of an untracked existing object stays untracked.
        let mut upd = live.clone();
        upd["spec"]["replicas"] = json!(9);
        record_update(
            "apps/v1",
            "Deployment",
            Some(&live),
            &mut upd,
            &opts("kubectl-edit", false, T2),
        );
        assert!(upd["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn kubectl_takes_over_client_side_apply_fields() {
        // kubectl apply (client-side) creates with the annotation, via an ordinary create.
        let mut created = deploy(3, "nginx:1");
        let last = go_json(&created);
        created["metadata"]["annotations"] = json!({ LAST_APPLIED: format!("{last}\n") });
        record_update(
            "apps/v1",
            "Deployment",
            None,
            &mut created,
            &opts("kubectl-client-side-apply", false, T1),
        );
        // Someone else's manager would conflict ...
        let err = apply(
            Some(&created),
            &deploy(3, "nginx:2"),
            &opts("other", false, T2),
        )
        .unwrap_err();
        assert!(err
            .message()
            .contains(r#""kubectl-client-side-apply" using apps/v1"#));
        // ... kubectl --server-side takes over what the annotation recorded unchanged.
        let out = apply(
            Some(&created),
            &deploy(3, "nginx:2"),
            &opts("kubectl", false, T2),
        )
        .unwrap();
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "nginx:2");
        let ann = out["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap();
        let parsed: Value = serde_json::from_str(ann).unwrap();
        assert_eq!(parsed, deploy(3, "nginx:2"));
        assert!(ann.ends_with('\n'));
        // A field changed since the last client-side apply still conflicts.
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(7);
        record_update(
            "apps/v1",
            "Deployment",
            Some(&created),
            &mut scaled,
            &opts("kubectl-scale", false, T2),
        );
        let err = apply(
            Some(&scaled),
            &deploy(3, "nginx:1"),
            &opts("kubectl", false, T2),
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            r#"Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas"#
        );
    }

    #[test]
    fn noop_apply_by_new_sharer_keeps_times() {
        let a = apply(None, &deploy(3, "nginx:1"), &opts("a", false, T1)).unwrap();
        let b = apply(Some(&a), &deploy(3, "nginx:1"), &opts("b", false, T2)).unwrap();
        let list = entries(&b);
        assert_eq!(entry(&list, "a")["time"], T1);
        assert!(entry(&list, "b").get("time").is_none());
    }

    #[test]
    fn update_managers_are_capped() {
        let mut obj =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        record_update(
            "v1",
            "ConfigMap",
            None,
            &mut obj,
            &opts("creator", false, "2026-11-24T01:00:00Z"),
        );
        for i in 0..12 {
            let old = obj.clone();
            obj["data"][format!("k{i}")] = json!("v");
            let now = format!("2026-11-24T01:{:02}:00Z", i + 1);
            let m = format!("m{i:02}");
            record_update(
                "v1",
                "ConfigMap",
                Some(&old),
                &mut obj,
                &opts(&m, false, &now),
            );
        }
        let list = entries(&obj);
        assert_eq!(list.len(), 10);
        let ancient = entry(&list, "ancient-changes");
        let owned = ancient["fieldsV1"]["f:data"].as_object().unwrap();
        assert!(owned.contains_key("f:k0") && owned.contains_key("f:k1"));
        assert_eq!(list.iter().filter(|e| e["manager"] == "m00").count(), 0);
    }

    #[test]
    fn status_subresource_owns_status_only() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let mut created = pod.clone();
        record_update("v1", "Pod", None, &mut created, &opts("kubectl", false, T1));
        let mut with_status = created.clone();
        with_status["status"] =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        let o = ApplyOptions {
            manager: "kubelet",
            force: false,
            now: T2,
            subresource: Some("status"),
        };
        record_update("v1", "Pod", Some(&created), &mut with_status, &o);
        let list = entries(&with_status);
        let k = entry(&list, "kubelet");
        assert_eq!(k["subresource"], "status");
        assert_eq!(
            k["fieldsV1"],
            json!({"f:status": {"f:conditions": {".": {}, "k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:phase": {}}})
        );
        // Applying status through the main resource changes nothing there.
        let cfg = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Failed"}});
        let out = server_side_apply("v1", "Pod", Some(&with_status), &cfg, &opts("x", false, T2))
            .unwrap();
        assert_eq!(out["status"]["phase"], "Running");
    }

    #[test]
    fn atomic_elements_and_maps() {
        let mut rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "r", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                "name": "web", "uid": "u-1", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c",
                    "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}}});
        record_update(
            "apps/v1",
            "ReplicaSet",
            None,
            &mut rs,
            &opts("kube-controller-manager", false, T1),
        );
        let f = &entries(&rs)[0]["fieldsV1"];
        assert_eq!(
            f["f:metadata"]["f:ownerReferences"],
            json!({".": {}, "k:{\"uid\":\"u-1\"}": {}})
        );
        let spec = &f["f:spec"]["f:template"]["f:spec"];
        assert_eq!(spec["f:nodeSelector"], json!({}));
        assert_eq!(
            spec["f:containers"]["k:{\"name\":\"c\"}"]["f:env"]["k:{\"name\":\"X\"}"],
            json!({".": {}, "f:name": {}, "f:valueFrom": {".": {}, "f:fieldRef": {}}})
        );
    }

    #[test]
    fn status_apply_keeps_spec_and_labels() {
        let d = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
        let mut cfg = deploy(1, "other");
        cfg["metadata"]["labels"] = json!({"hijack": "yes"});
        cfg["status"] =
            json!({"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]});
        let o = ApplyOptions {
            manager: "ctrl",
            force: false,
            now: T2,
            subresource: Some("status"),
        };
        let out = apply(Some(&d), &cfg, &o).unwrap();
        assert_eq!(out["spec"], d["spec"]);
        assert_eq!(out["metadata"]["labels"], d["metadata"]["labels"]);
        assert_eq!(out["status"]["conditions"][0]["type"], "Available");
        let list = entries(&out);
        let c = entry(&list, "ctrl");
        assert_eq!(c["subresource"], "status");
        assert!(c["fieldsV1"].get("f:spec").is_none());
        assert!(c["fieldsV1"]["f:status"].get("f:conditions").is_some());
    }

    #[test]
    fn record_update_honours_managed_fields_in_body() {
        let a = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
        let mut edited = a.clone();
        edited["metadata"]["managedFields"] = json!([{"manager": "someone", "operation": "Update",
            "apiVersion": "apps/v1", "time": T1, "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
        record_update(
            "apps/v1",
            "Deployment",
            Some(&a),
            &mut edited,
            &opts("x", false, T2),
        );
        let list = entries(&edited);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["manager"], "someone");
    }
}
