//! The in-memory index from keys to their revision history (etcd's `treeIndex`).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::key_index::{KeyAt, KeyIndex};
use crate::kv::KeyRange;
use crate::revision::Revision;

#[derive(Default)]
pub(crate) struct TreeIndex {
    keys: BTreeMap<Vec<u8>, KeyIndex>,
}

impl TreeIndex {
    pub fn get(&self, key: &[u8], at: i64) -> Option<KeyAt> {
        self.keys.get(key).and_then(|ki| ki.get(at))
    }

    pub fn put(&mut self, key: &[u8], rev: Revision) -> (i64, i64) {
        self.entry(key).put(rev)
    }

    pub fn restore_put(&mut self, key: &[u8], rev: Revision, created: i64, version: i64) {
        self.entry(key).restore_put(rev, created, version)
    }

    /// Records a deletion; false if the key was not live.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.keys.get_mut(key).is_some_and(|ki| ki.tombstone(rev))
    }

    pub fn restore_tombstone(&mut self, key: &[u8], rev: Revision) {
        self.entry(key).restore_tombstone(rev)
    }

    fn entry(&mut self, key: &[u8]) -> &mut KeyIndex {
        if !self.keys.contains_key(key) {
            self.keys.insert(key.to_vec(), KeyIndex::new());
        }
        self.keys.get_mut(key).expect("inserted above")
    }

    /// Visits, in key order, every key of `range` that exists at revision `at`. `visit` returns
    /// false to stop early.
    pub fn visit(&self, range: &KeyRange, at: i64, mut visit: impl FnMut(&[u8], KeyAt) -> bool) {
        let iter: Box<dyn Iterator<Item = (&Vec<u8>, &KeyIndex)>> = match range {
            KeyRange::Single(key) => Box::new(self.keys.get_key_value(key).into_iter()),
            KeyRange::From(key) => Box::new(
                self.keys
                    .range::<[u8], _>((Bound::Included(key.as_slice()), Bound::Unbounded)),
            ),
            KeyRange::Between(key, end) => {
                if end <= key {
                    return;
                }
                Box::new(self.keys.range::<[u8], _>((
                    Bound::Included(key.as_slice()),
                    Bound::Excluded(end.as_slice()),
                )))
            }
        };
        for (key, ki) in iter {
            if let Some(at) = ki.get(at) {
                if !visit(key, at) {
                    return;
                }
            }
        }
    }

    /// Keys of `range` existing at `at`, with what the read sees of them.
    pub fn live(&self, range: &KeyRange, at: i64) -> Vec<(Vec<u8>, KeyAt)> {
        let mut out = Vec::new();
        self.visit(range, at, |k, a| {
            out.push((k.to_vec(), a));
            true
        });
        out
    }

    /// Compacts every key at main revision `at`; returns the revisions no longer referenced.
    pub fn compact(&mut self, at: i64) -> Vec<Revision> {
        let mut removed = Vec::new();
        self.keys.retain(|_, ki| {
            ki.compact(at, &mut removed);
            !ki.is_empty()
        });
        removed
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}
