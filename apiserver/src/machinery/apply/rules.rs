//! Server-side apply's view of [`crate::machinery::schema`]: the list types, list-map keys and
//! atomic maps/structs of one kind, keyed by type path (`spec.template.spec.containers[].ports`;
//! `[]` stands for "an element of the list"). Every list without a rule is atomic, as kube
//! treats lists without a list type; every map without a rule is granular.

use std::collections::BTreeMap;

use crate::machinery::schema::{self, Field, ListType, Quirk, TypeName};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// `x-kubernetes-list-type: map`; keys as in `x-kubernetes-list-map-keys`, with the schema
    /// defaults kube uses for a key an element omits (e.g. `protocol: TCP`).
    ListMap {
        keys: &'static [&'static str],
        defaults: &'static [(&'static str, &'static str)],
    },
    /// `x-kubernetes-list-type: set`.
    ListSet,
    /// `x-kubernetes-list-type: atomic` (also the default for lists without a rule; listed
    /// where kube says so explicitly).
    ListAtomic,
    /// `x-kubernetes-map-type: atomic` / `+structType=atomic`: replaced and owned as a whole.
    MapAtomic,
}

/// The rules of one kind, keyed by absolute type path.
pub(super) struct Schema {
    rules: BTreeMap<String, Rule>,
}

fn join(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() {
        rel.to_string()
    } else {
        format!("{prefix}.{rel}")
    }
}

/// The list rule of a row, as apply sees it.
fn list_rule(f: &Field) -> Option<Rule> {
    if let Quirk::ApplyListMap(keys) = f.quirk {
        return Some(Rule::ListMap {
            keys,
            defaults: &[],
        });
    }
    match f.list {
        ListType::Unset => None,
        ListType::Atomic => Some(Rule::ListAtomic),
        ListType::Set => Some(Rule::ListSet),
        ListType::Map { keys, defaults } => Some(Rule::ListMap { keys, defaults }),
    }
}

impl Schema {
    /// Walks the schema table from the kind's root type. Every kind has an ObjectMeta at
    /// `metadata`, including kinds the table does not know.
    pub(super) fn for_kind(kind: &str) -> Schema {
        let mut s = Schema {
            rules: BTreeMap::new(),
        };
        s.add_type(schema::ROOT_META, "metadata");
        if let Some(root) = schema::root_type_of_kind(kind) {
            s.add_type(root, "");
        }
        s
    }

    fn add_type(&mut self, ty: TypeName, prefix: &str) {
        for f in schema::fields_of(ty) {
            if f.quirk == Quirk::NotInApply {
                continue;
            }
            let path = join(prefix, f.name);
            let rule = list_rule(f);
            if let Some(rule) = rule {
                self.rules.insert(path.clone(), rule);
            }
            if f.atomic {
                self.rules.insert(path.clone(), Rule::MapAtomic);
            }
            let Some(child) = f.child else {
                continue;
            };
            // Below an atomic list nothing is looked up; a list's child type is its elements'.
            let child_path = match rule {
                Some(Rule::ListAtomic | Rule::MapAtomic) => continue,
                Some(Rule::ListMap { .. } | Rule::ListSet) => item_tp(&path),
                None => path,
            };
            match schema::atomic_type(child) {
                Some(q) if q != Quirk::NotInApply => {
                    self.rules.insert(child_path, Rule::MapAtomic);
                }
                _ => self.add_type(child, &child_path),
            }
        }
    }

    pub(super) fn rule(&self, tp: &str) -> Option<Rule> {
        self.rules.get(tp).copied()
    }
}

pub(super) fn child_tp(tp: &str, field: &str) -> String {
    join(tp, field)
}

pub(super) fn item_tp(tp: &str) -> String {
    format!("{tp}[]")
}
