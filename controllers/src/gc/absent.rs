//! Owners known not to exist (kube's `ReferenceCache`, an LRU of 500 entries): a dependent's
//! owner found absent once is not asked for again while it is remembered. Keyed by the owner's
//! full coordinates, namespace included (none for a cluster-scoped kind).

use std::collections::{BTreeMap, HashMap};

use super::identity::Identity;

/// kube's `NewReferenceCache(500)`.
pub const ABSENT_OWNERS_MAX: usize = 500;

/// A bounded least-recently-used set of identities.
#[derive(Debug)]
pub struct AbsentOwners {
    capacity: usize,
    tick: u64,
    last_used: HashMap<Identity, u64>,
    by_tick: BTreeMap<u64, Identity>,
}

impl Default for AbsentOwners {
    fn default() -> Self {
        AbsentOwners::new(ABSENT_OWNERS_MAX)
    }
}

impl AbsentOwners {
    pub fn new(capacity: usize) -> AbsentOwners {
        AbsentOwners {
            capacity: capacity.max(1),
            tick: 0,
            last_used: HashMap::new(),
            by_tick: BTreeMap::new(),
        }
    }

    fn touch(&mut self, identity: &Identity) {
        self.tick += 1;
        if let Some(old) = self.last_used.insert(identity.clone(), self.tick) {
            self.by_tick.remove(&old);
        }
        self.by_tick.insert(self.tick, identity.clone());
    }

    pub fn add(&mut self, identity: Identity) {
        self.touch(&identity);
        while self.last_used.len() > self.capacity {
            let Some((_, oldest)) = self.by_tick.pop_first() else {
                break;
            };
            self.last_used.remove(&oldest);
        }
    }

    /// Whether `identity` is remembered as absent (a hit counts as a use).
    pub fn has(&mut self, identity: &Identity) -> bool {
        if self.last_used.contains_key(identity) {
            self.touch(identity);
            true
        } else {
            false
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.last_used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> Identity {
        Identity {
            kind: "ConfigMap".into(),
            api_version: "v1".into(),
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    #[test]
    fn the_least_recently_used_goes_first() {
        let mut c = AbsentOwners::new(2);
        c.add(id("a"));
        c.add(id("b"));
        assert!(c.has(&id("a")), "a is now the most recent");
        c.add(id("c"));
        assert_eq!(c.len(), 2);
        assert!(!c.has(&id("b")), "b was evicted");
        assert!(c.has(&id("a")));
        assert!(c.has(&id("c")));
        let mut other_ns = id("a");
        other_ns.namespace = "other".into();
        assert!(!c.has(&other_ns), "the namespace is part of the key");
        c.add(id("a"));
        assert_eq!(c.len(), 2, "adding again does not grow");
    }

    #[test]
    fn the_default_holds_kubes_500() {
        let mut c = AbsentOwners::default();
        for i in 0..600 {
            c.add(id(&i.to_string()));
        }
        assert_eq!(c.len(), ABSENT_OWNERS_MAX);
        assert!(!c.has(&id("0")));
        assert!(c.has(&id("599")));
    }
}
