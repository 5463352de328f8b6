//! A watch-fed cache of one resource (client-go's informer store plus its event handlers): it
//! applies kube-rs `watcher` events and says what changed, with the previous object, so that
//! controllers can react as kube's `OnAdd`/`OnUpdate`/`OnDelete` handlers do.
//!
//! A re-list (`Init` … `InitDone`) is buffered and swapped in whole; objects that vanished
//! during the watch gap come out as `Deleted` (kube's `DeletedFinalStateUnknown`), and the
//! others as `Added` or `Updated`. Objects are indexed by namespace, since controllers list
//! "everything in this namespace" on every sync.
//!
//! Bound: the cache holds what the API server lists, and the re-list buffer at most one more
//! copy of it while a re-list is in flight.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kube::runtime::watcher::Event;
use kube::Resource;
use tokio::sync::watch;

/// What an event changed.
#[derive(Debug, Clone)]
pub enum Change<K> {
    Added(Arc<K>),
    Updated {
        old: Arc<K>,
        new: Arc<K>,
    },
    /// The last state known (from the delete event, or from the cache after a re-list).
    Deleted(Arc<K>),
}

type ByName<K> = HashMap<String, Arc<K>>;

struct State<K> {
    by_namespace: HashMap<String, ByName<K>>,
    /// Objects listed since `Init`, keyed by (namespace, name); `None` outside a re-list.
    relist: Option<HashMap<(String, String), Arc<K>>>,
}

/// A cache of one resource kind, filled from a watcher.
pub struct Cache<K> {
    state: RwLock<State<K>>,
    synced: watch::Sender<bool>,
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Cache {
            state: RwLock::new(State {
                by_namespace: HashMap::new(),
                relist: None,
            }),
            synced: watch::channel(false).0,
        }
    }
}

fn ns_name<K: Resource>(obj: &K) -> (String, String) {
    let m = obj.meta();
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

impl<K: Resource> Cache<K> {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State<K>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State<K>> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one watcher event and returns what it changed.
    pub fn apply(&self, event: Event<K>) -> Vec<Change<K>> {
        match event {
            Event::Apply(obj) => {
                let (ns, name) = ns_name(&obj);
                let new = Arc::new(obj);
                let old = self
                    .write()
                    .by_namespace
                    .entry(ns)
                    .or_default()
                    .insert(name, new.clone());
                vec![match old {
                    Some(old) => Change::Updated { old, new },
                    None => Change::Added(new),
                }]
            }
            Event::Delete(obj) => {
                let (ns, name) = ns_name(&obj);
                let mut st = self.write();
                if let Some(objects) = st.by_namespace.get_mut(&ns) {
                    objects.remove(&name);
                    if objects.is_empty() {
                        st.by_namespace.remove(&ns);
                    }
                }
                vec![Change::Deleted(Arc::new(obj))]
            }
            Event::Init => {
                self.write().relist = Some(HashMap::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                let key = ns_name(&obj);
                self.write()
                    .relist
                    .get_or_insert_with(HashMap::new)
                    .insert(key, Arc::new(obj));
                Vec::new()
            }
            Event::InitDone => {
                let changes = self.swap_in_relist();
                self.synced.send_replace(true);
                changes
            }
        }
    }

    fn swap_in_relist(&self) -> Vec<Change<K>> {
        let mut st = self.write();
        let listed = st.relist.take().unwrap_or_default();
        let mut old = std::mem::take(&mut st.by_namespace);
        let mut changes = Vec::with_capacity(listed.len());
        for ((ns, name), new) in listed {
            let previous = old.get_mut(&ns).and_then(|m| m.remove(&name));
            changes.push(match previous {
                Some(old) => Change::Updated {
                    old,
                    new: new.clone(),
                },
                None => Change::Added(new.clone()),
            });
            st.by_namespace.entry(ns).or_default().insert(name, new);
        }
        changes.extend(
            old.into_values()
                .flat_map(|m| m.into_values())
                .map(Change::Deleted),
        );
        changes
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.read().by_namespace.get(namespace)?.get(name).cloned()
    }

    /// Every object of one namespace, in no particular order.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.read()
            .by_namespace
            .get(namespace)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.read().by_namespace.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the first list has been applied.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Resolves once the first list has been applied.
    pub async fn synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we borrow it.
        let _ = rx.wait_for(|s| *s).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::pod::testing::pod;
    use k8s_openapi::api::core::v1::Pod;

    fn names(changes: &[Change<Pod>]) -> Vec<String> {
        let mut v: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Added(p) => format!("+{}", p.metadata.name.as_deref().unwrap_or("")),
                Change::Updated { old, new } => format!(
                    "~{}@{}->{}",
                    new.metadata.name.as_deref().unwrap_or(""),
                    old.metadata.resource_version.as_deref().unwrap_or(""),
                    new.metadata.resource_version.as_deref().unwrap_or("")
                ),
                Change::Deleted(p) => format!("-{}", p.metadata.name.as_deref().unwrap_or("")),
            })
            .collect();
        v.sort();
        v
    }

    fn rv(mut p: Pod, rv: &str) -> Pod {
        p.metadata.resource_version = Some(rv.into());
        p
    }

    #[test]
    fn watch_events_report_the_previous_object() {
        let c = Cache::<Pod>::new();
        assert!(!c.is_synced());
        assert_eq!(names(&c.apply(Event::Apply(rv(pod("a"), "1")))), ["+a"]);
        assert_eq!(
            names(&c.apply(Event::Apply(rv(pod("a"), "2")))),
            ["~a@1->2"]
        );
        assert_eq!(c.len(), 1);
        assert_eq!(names(&c.apply(Event::Delete(rv(pod("a"), "3")))), ["-a"]);
        assert!(c.is_empty());
        assert!(c.get("ns", "a").is_none());
    }

    #[test]
    fn a_relist_is_swapped_in_whole_and_reports_what_vanished() {
        let c = Cache::<Pod>::new();
        c.apply(Event::Apply(rv(pod("a"), "1")));
        c.apply(Event::Apply(rv(pod("b"), "1")));
        c.apply(Event::Init);
        c.apply(Event::InitApply(rv(pod("b"), "5")));
        c.apply(Event::InitApply(rv(pod("c"), "6")));
        // Until InitDone the old state is served.
        assert!(c.get("ns", "a").is_some());
        assert!(c.get("ns", "c").is_none());
        let changes = c.apply(Event::InitDone);
        assert_eq!(names(&changes), ["+c", "-a", "~b@1->5"]);
        assert!(c.is_synced());
        assert_eq!(c.len(), 2);
        assert!(c.get("ns", "a").is_none());
        let mut in_ns: Vec<_> = c
            .in_namespace("ns")
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        in_ns.sort();
        assert_eq!(in_ns, ["b", "c"]);
        assert!(c.in_namespace("other").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn synced_resolves_after_the_first_list() {
        let c = Arc::new(Cache::<Pod>::new());
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.synced().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        c.apply(Event::Init);
        c.apply(Event::InitDone);
        waiter.await.expect("joins");
    }
}
