//! Items of a list by identity, so merging and ordering lists of n items costs O(n log n), not
//! O(n²): a patch body of 3 MiB holds some 80,000 list items, and every step of strategic merge
//! patch that looked an item up by scanning a list made such a body cost minutes of CPU.
//!
//! An item's identity is its merge key's value for lists of maps, the item itself otherwise,
//! written canonically (object keys sorted), so two items have the same identity exactly when
//! `serde_json::Value`'s `==` says their identifying values are equal.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use serde_json::Value;

/// The kind of list elements, as `sliceElementType` distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ElemKind {
    Map,
    List,
    Scalar(&'static str),
}

/// A value written with its object keys sorted: equal values, equal strings.
pub(crate) fn canon(v: &Value) -> String {
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
                    let _ = write!(out, "{}:", Value::String(k.clone()));
                    write(&m[k.as_str()], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => {
                let _ = write!(out, "{other}");
            }
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// The identity of a list item: for maps its merge key's value (maps without one share a single
/// identity, as comparing two missing keys finds them equal), otherwise the value itself.
pub(super) fn identity(v: &Value, merge_key: &str, kind: ElemKind) -> String {
    if kind == ElemKind::Map {
        match v.as_object().and_then(|m| m.get(merge_key)) {
            Some(k) => canon(k),
            None => String::from("\0absent"),
        }
    } else {
        canon(v)
    }
}

/// The merge key's value of a map item, if it has one.
pub(super) fn key_identity(v: &Value, merge_key: &str) -> Option<String> {
    v.as_object().and_then(|m| m.get(merge_key)).map(canon)
}

/// The first position of each identity in a list (strategicpatch's `index`).
pub(super) struct Positions {
    first: HashMap<String, usize>,
    merge_key: String,
    kind: ElemKind,
}

impl Positions {
    pub(super) fn of(list: &[Value], merge_key: &str, kind: ElemKind) -> Positions {
        let mut first = HashMap::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            first.entry(identity(v, merge_key, kind)).or_insert(i);
        }
        Positions {
            first,
            merge_key: merge_key.to_string(),
            kind,
        }
    }

    pub(super) fn get(&self, v: &Value) -> Option<usize> {
        self.first
            .get(&identity(v, &self.merge_key, self.kind))
            .copied()
    }
}

/// The canonical forms of a list's values.
pub(super) fn value_set(list: &[Value]) -> HashSet<String> {
    list.iter().map(canon).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equal_values_have_equal_identities() {
        assert_eq!(
            canon(&json!({"a": 1, "b": [1, "x"]})),
            canon(&json!({"b": [1, "x"], "a": 1}))
        );
        assert_ne!(canon(&json!(1)), canon(&json!(1.0)));
        assert_ne!(canon(&json!("1")), canon(&json!(1)));
        let list = vec![
            json!({"name": "a"}),
            json!({"x": 1}),
            json!({"name": "a", "v": 2}),
        ];
        let p = Positions::of(&list, "name", ElemKind::Map);
        assert_eq!(p.get(&json!({"name": "a", "other": true})), Some(0));
        assert_eq!(
            p.get(&json!({"y": 2})),
            Some(1),
            "maps without the key match the first such"
        );
        assert_eq!(p.get(&json!({"name": "b"})), None);
    }
}
