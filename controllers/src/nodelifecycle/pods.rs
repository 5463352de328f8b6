//! Pods by the node they are bound to (client-go's `spec.nodeName` indexer), kept from the
//! changes a pod [`Cache`](crate::util::cache::Cache) reports. Unscheduled pods are under `""`.
//!
//! Bound: one entry per pod of the cache it follows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::Pod;

use crate::util::cache::Change;
use crate::util::pod::object_key;

pub fn node_name(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

#[derive(Default)]
pub struct PodsByNode {
    by_node: Mutex<HashMap<String, HashMap<String, Arc<Pod>>>>,
}

impl PodsByNode {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, Arc<Pod>>>> {
        self.by_node.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(map: &mut HashMap<String, HashMap<String, Arc<Pod>>>, p: &Pod) {
        let node = node_name(p);
        if let Some(pods) = map.get_mut(node) {
            pods.remove(&object_key(&p.metadata));
            if pods.is_empty() {
                map.remove(node);
            }
        }
    }

    pub fn apply(&self, change: &Change<Pod>) {
        let mut map = self.lock();
        match change {
            Change::Added(p) => {
                map.entry(node_name(p).to_string())
                    .or_default()
                    .insert(object_key(&p.metadata), p.clone());
            }
            Change::Updated { old, new } => {
                Self::remove(&mut map, old);
                map.entry(node_name(new).to_string())
                    .or_default()
                    .insert(object_key(&new.metadata), new.clone());
            }
            Change::Deleted(p) => Self::remove(&mut map, p),
        }
    }

    /// The pods bound to `node` (`""`: unscheduled ones).
    pub fn on_node(&self, node: &str) -> Vec<Arc<Pod>> {
        self.lock()
            .get(node)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every pod, in no particular order.
    pub fn all(&self) -> Vec<Arc<Pod>> {
        self.lock()
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// The names of the nodes pods are bound to.
    pub fn nodes(&self) -> Vec<String> {
        self.lock()
            .keys()
            .filter(|k| !k.is_empty())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::pod::testing::{on_node, pod};

    #[test]
    fn pods_follow_their_node() {
        let idx = PodsByNode::default();
        let a = Arc::new(pod("a"));
        idx.apply(&Change::Added(a.clone()));
        assert_eq!(idx.on_node("").len(), 1);
        let bound = Arc::new(on_node(pod("a"), "n1"));
        idx.apply(&Change::Updated {
            old: a,
            new: bound.clone(),
        });
        assert!(idx.on_node("").is_empty());
        assert_eq!(idx.on_node("n1").len(), 1);
        assert_eq!(idx.nodes(), ["n1"]);
        idx.apply(&Change::Added(Arc::new(on_node(pod("b"), "n2"))));
        assert_eq!(idx.all().len(), 2);
        idx.apply(&Change::Deleted(bound));
        assert!(idx.on_node("n1").is_empty());
        assert_eq!(idx.nodes(), ["n2"]);
    }
}
