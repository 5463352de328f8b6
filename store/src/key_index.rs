//! Per-key revision history, after etcd's `keyIndex`.
//!
//! A key's history is a list of *generations*. A generation starts when the key is created and ends
//! with the tombstone written by its deletion; the next put starts a new generation. Example, for
//! puts at 1, 2, a delete at 3, a put at 4:
//!
//! ```text
//! generations: [ {created 1, ver 3, revs [1, 2, 3(tombstone)]}, {created 4, ver 1, revs [4]} ]
//! ```
//!
//! The last generation is empty while the key is deleted. Compaction at revision `r` drops every
//! revision below `r` except the largest one below `r` when no change at `r` itself supersedes it
//! (it is what a read at `r` sees); a generation whose tombstone is below `r` disappears entirely.
//! Changes at `r` itself are kept, tombstones included: history from the compacted revision on is
//! still served (a watch may start at `r`), so it must be complete. etcd does the same since
//! etcd-io/etcd#18274; before that it dropped a tombstone at `r`, losing its delete event.

use crate::revision::Revision;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Generation {
    /// Number of puts in this generation, compacted ones included: the key's `version`.
    pub ver: i64,
    /// Main revision that created the key in this generation.
    pub created: i64,
    pub revs: Vec<Revision>,
}

/// What a read at some revision sees of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyAt {
    pub modified: Revision,
    pub created: i64,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyIndex {
    pub generations: Vec<Generation>,
}

impl KeyIndex {
    pub fn new() -> Self {
        KeyIndex {
            generations: vec![Generation::default()],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].revs.is_empty()
    }

    /// Whether the key currently exists (its last generation is open).
    pub fn is_live(&self) -> bool {
        !self.current().revs.is_empty()
    }

    fn current(&self) -> &Generation {
        self.generations
            .last()
            .expect("a key index always has a generation")
    }

    fn last_revision(&self) -> Option<Revision> {
        self.generations
            .iter()
            .rev()
            .find_map(|g| g.revs.last().copied())
    }

    /// Records a put at `rev`; returns the key's new (created, version).
    pub fn put(&mut self, rev: Revision) -> (i64, i64) {
        assert!(
            self.last_revision().is_none_or(|last| rev > last),
            "key index: put at {rev:?} is not after the key's last revision"
        );
        let g = self
            .generations
            .last_mut()
            .expect("a key index always has a generation");
        if g.revs.is_empty() {
            g.created = rev.main;
        }
        g.revs.push(rev);
        g.ver += 1;
        (g.created, g.ver)
    }

    /// Rebuilds a put read back from disk, whose stored record gives the generation's creation
    /// revision and version (earlier revisions may have been compacted away).
    pub fn restore_put(&mut self, rev: Revision, created: i64, version: i64) {
        let g = self
            .generations
            .last_mut()
            .expect("a key index always has a generation");
        if g.revs.is_empty() {
            g.created = created;
        }
        g.revs.push(rev);
        g.ver = version;
    }

    /// Records a deletion at `rev`. Returns false (and changes nothing) if the key is not live.
    pub fn tombstone(&mut self, rev: Revision) -> bool {
        if !self.is_live() {
            return false;
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    /// Rebuilds a tombstone read back from disk. Its generation's puts may all have been compacted
    /// away (a tombstone at the compacted revision is kept): then it is a generation of its own.
    pub fn restore_tombstone(&mut self, rev: Revision) {
        if !self.tombstone(rev) {
            let g = self
                .generations
                .last_mut()
                .expect("a key index always has a generation");
            g.revs.push(rev);
            self.generations.push(Generation::default());
        }
    }

    /// What a read at main revision `at` sees, if the key exists then.
    pub fn get(&self, at: i64) -> Option<KeyAt> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let Some(first) = g.revs.first() else {
                continue;
            };
            if i != last {
                let tomb = g.revs.last().expect("non-empty");
                if tomb.main <= at {
                    // The key was deleted at or before `at` and not recreated by then.
                    return None;
                }
            }
            if first.main <= at {
                let n = g
                    .revs
                    .iter()
                    .rposition(|r| r.main <= at)
                    .expect("first <= at");
                return Some(KeyAt {
                    modified: g.revs[n],
                    created: g.created,
                    version: g.ver - (g.revs.len() - n - 1) as i64,
                });
            }
        }
        None
    }

    /// Compacts history at main revision `at`, pushing every revision dropped to `removed`.
    pub fn compact(&mut self, at: i64, removed: &mut Vec<Revision>) {
        let last = self.generations.len() - 1;
        let mut gen_idx = 0;
        while gen_idx < last {
            let tomb = self.generations[gen_idx]
                .revs
                .last()
                .expect("closed generation has a tombstone");
            if tomb.main >= at {
                break;
            }
            gen_idx += 1;
        }
        for g in &self.generations[..gen_idx] {
            removed.extend_from_slice(&g.revs);
        }
        // Of the revisions below `at`, only the last is needed, and only if nothing at `at` follows.
        let g = &mut self.generations[gen_idx];
        let below = g.revs.iter().take_while(|r| r.main < at).count();
        let changed_at = g.revs.get(below).is_some_and(|r| r.main == at);
        let keep_from = if changed_at {
            below
        } else {
            below.saturating_sub(1)
        };
        removed.extend(g.revs.drain(..keep_from));
        self.generations.drain(..gen_idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    fn example() -> KeyIndex {
        // put 2, put 4, delete 6, put 8, put 10, delete 12, put 14
        let mut ki = KeyIndex::new();
        ki.put(rev(2));
        ki.put(rev(4));
        assert!(ki.tombstone(rev(6)));
        ki.put(rev(8));
        ki.put(rev(10));
        assert!(ki.tombstone(rev(12)));
        ki.put(rev(14));
        ki
    }

    #[test]
    fn get_walks_generations() {
        let ki = example();
        assert_eq!(ki.get(1), None);
        assert_eq!(
            ki.get(2),
            Some(KeyAt {
                modified: rev(2),
                created: 2,
                version: 1
            })
        );
        assert_eq!(
            ki.get(5),
            Some(KeyAt {
                modified: rev(4),
                created: 2,
                version: 2
            })
        );
        assert_eq!(ki.get(6), None);
        assert_eq!(ki.get(7), None);
        assert_eq!(
            ki.get(9),
            Some(KeyAt {
                modified: rev(8),
                created: 8,
                version: 1
            })
        );
        assert_eq!(
            ki.get(11),
            Some(KeyAt {
                modified: rev(10),
                created: 8,
                version: 2
            })
        );
        assert_eq!(ki.get(13), None);
        assert_eq!(
            ki.get(100),
            Some(KeyAt {
                modified: rev(14),
                created: 14,
                version: 1
            })
        );
        let mut deleted = ki.clone();
        assert!(deleted.tombstone(rev(20)));
        assert!(!deleted.is_live() && deleted.get(20).is_none());
        assert!(
            !deleted.tombstone(rev(21)),
            "a deleted key cannot be deleted again"
        );
    }

    #[test]
    fn compaction_keeps_what_reads_at_or_after_it_need() {
        for at in 0..=16 {
            let full = example();
            let mut ki = example();
            let mut removed = Vec::new();
            ki.compact(at, &mut removed);
            for r in at..=16 {
                assert_eq!(ki.get(r), full.get(r), "compact at {at}, read at {r}");
            }
            // Nothing still referenced was removed, and nothing is both kept and removed.
            for g in &ki.generations {
                for r in &g.revs {
                    assert!(
                        !removed.contains(r),
                        "compact at {at}: {r:?} kept and removed"
                    );
                }
            }
            let kept: usize = ki.generations.iter().map(|g| g.revs.len()).sum();
            assert_eq!(kept + removed.len(), 7, "compact at {at}");
        }
    }

    #[test]
    fn compaction_drops_deleted_generations() {
        let mut ki = example();
        let mut removed = Vec::new();
        ki.compact(7, &mut removed);
        assert_eq!(removed, vec![rev(2), rev(4), rev(6)]);
        ki.compact(13, &mut removed);
        assert_eq!(ki.generations.len(), 1);
        assert_eq!(ki.generations[0].revs, vec![rev(14)]);

        let mut gone = KeyIndex::new();
        gone.put(rev(1));
        gone.tombstone(rev(2));
        let mut removed = Vec::new();
        gone.compact(3, &mut removed);
        assert!(gone.is_empty());
        assert_eq!(removed, vec![rev(1), rev(2)]);
    }

    #[test]
    fn compaction_keeps_changes_at_its_revision() {
        // A tombstone at the compacted revision is history a watch from there must see.
        let mut ki = example();
        let mut removed = Vec::new();
        ki.compact(6, &mut removed);
        assert_eq!(removed, vec![rev(2), rev(4)]);
        assert_eq!(ki.generations[0].revs, vec![rev(6)]);
        assert_eq!(ki.get(6), None);
        assert_eq!(ki.get(8), example().get(8));
        // So is a put at it: the put before it is no longer needed.
        let mut ki = example();
        ki.compact(10, &mut removed);
        assert_eq!(ki.generations[0].revs, vec![rev(10), rev(12)]);
        // A put and a delete in one revision: both stay.
        let mut ki = KeyIndex::new();
        ki.put(rev(1));
        ki.put(Revision::new(2, 0));
        assert!(ki.tombstone(Revision::new(2, 1)));
        let mut removed = Vec::new();
        ki.compact(2, &mut removed);
        assert_eq!(removed, vec![rev(1)]);
        assert_eq!(
            ki.generations[0].revs,
            vec![Revision::new(2, 0), Revision::new(2, 1)]
        );
        // After a restart, such a lone tombstone is rebuilt as a generation of its own.
        let mut restored = KeyIndex::new();
        restored.restore_tombstone(rev(6));
        restored.restore_put(rev(8), 8, 1);
        assert_eq!(restored.generations.len(), 2);
        assert_eq!(restored.get(6), None);
        assert_eq!(restored.get(8), example().get(8));
        let mut removed = Vec::new();
        restored.compact(7, &mut removed);
        assert_eq!(removed, vec![rev(6)]);
    }
}
