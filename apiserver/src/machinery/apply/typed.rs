//! Walks over values (structured-merge-diff typed/tofieldset.go, merge.go, compare.go,
//! remove.go), driven by a kind's [`Schema`] rules.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

use super::fieldpath::{has_descendant, has_self_or_descendant, path_string, remove_under};
use super::fieldpath::{FieldSet, Path, Pe};
use super::rules::{child_tp, item_tp, Rule, Schema};

pub(super) fn describe(v: &Value) -> &'static str {
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
pub(super) fn to_field_set(
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
pub(super) fn merge(s: &Schema, l: &Value, r: &Value, tp: &str) -> Value {
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
pub(super) struct Comparison {
    pub(super) added: FieldSet,
    pub(super) removed: FieldSet,
    pub(super) modified: FieldSet,
}

impl Comparison {
    pub(super) fn changed(&self) -> FieldSet {
        self.added.union(&self.modified).cloned().collect()
    }

    pub(super) fn filter(&mut self, ignored: &[Path]) {
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
pub(super) fn compare(
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
pub(super) fn prune(
    s: &Schema,
    v: &mut Value,
    tp: &str,
    path: &mut Path,
    last: &FieldSet,
    keep: &FieldSet,
) {
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
