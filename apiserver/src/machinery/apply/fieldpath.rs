//! Field paths and sets (sigs.k8s.io/structured-merge-diff/fieldpath): path elements, their
//! order, and the `fieldsV1` encoding of a set.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// One step of a field path.
#[derive(Debug, Clone)]
pub(super) enum Pe {
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
    pub(super) fn display(&self) -> String {
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
    pub(super) fn fields_v1_key(&self) -> String {
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

pub(super) type Path = Vec<Pe>;
/// A flat set of paths; lexicographic order puts every extension of a path right after it,
/// which makes "this path or anything under it" a range query.
pub(super) type FieldSet = BTreeSet<Path>;

pub(super) fn path_string(p: &[Pe]) -> String {
    p.iter().map(Pe::display).collect()
}

pub(super) fn field_path(names: &[&str]) -> Path {
    names.iter().map(|n| Pe::Field((*n).to_string())).collect()
}

/// Whether `set` holds `p` or any path under it.
pub(super) fn has_self_or_descendant(set: &FieldSet, p: &[Pe]) -> bool {
    set.range(p.to_vec()..)
        .next()
        .is_some_and(|q| q.starts_with(p))
}

/// Whether `set` holds a path strictly under `p`.
pub(super) fn has_descendant(set: &FieldSet, p: &[Pe]) -> bool {
    set.range(p.to_vec()..)
        .find(|q| q.len() > p.len() || !q.starts_with(p))
        .is_some_and(|q| q.starts_with(p))
}

/// Drops every path at or under one of `prefixes` (kube's `RecursiveDifference` of reset fields).
pub(super) fn remove_under(set: &mut FieldSet, prefixes: &[Path]) {
    set.retain(|p| !prefixes.iter().any(|pre| p.starts_with(pre)));
}

/// The order `Set.Iterate` visits paths: at each level the members first, then the children.
pub(super) fn iterate_order(a: &[Pe], b: &[Pe]) -> Ordering {
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
pub(super) fn set_to_fields_v1(set: &FieldSet) -> Value {
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

pub(super) fn fields_v1_to_set(v: &Value) -> Option<FieldSet> {
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
