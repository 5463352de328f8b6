//! What a watch event means for the ReplicaSet controller (the `addPod`/`updatePod`/`deletePod`
//! and `addRS`/`updateRS`/`deleteRS` handlers of kube's `replica_set.go`): which ReplicaSet keys
//! to sync, when, and which expectations the event fulfils. Pure: the ReplicaSets are looked up
//! through [`ReplicaSets`].

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::SelectorExt;

use super::sync::{min_ready_seconds, Kind, REPLICA_SET};
use crate::util::cache::{Cache, Change};
use crate::util::pod::{controller_ref, is_pod_ready, labels, object_key, selector};

/// Looks up ReplicaSets (the cache, or a fake in tests).
pub trait ReplicaSets {
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<ReplicaSet>>;
    fn in_namespace(&self, namespace: &str) -> Vec<Arc<ReplicaSet>>;
    /// The kind pods' controller references must name to be these objects' pods.
    fn kind(&self) -> Kind {
        REPLICA_SET
    }
}

/// ReplicationControllers, cached as the ReplicaSets they convert to: their pods name
/// `v1/ReplicationController` as controller.
pub struct ReplicationControllers<'a>(pub &'a Cache<ReplicaSet>);

impl ReplicaSets for ReplicationControllers<'_> {
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<ReplicaSet>> {
        self.0.get(namespace, name)
    }
    fn in_namespace(&self, namespace: &str) -> Vec<Arc<ReplicaSet>> {
        self.0.in_namespace(namespace)
    }
    fn kind(&self) -> Kind {
        super::sync::REPLICATION_CONTROLLER
    }
}

impl ReplicaSets for Cache<ReplicaSet> {
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<ReplicaSet>> {
        Cache::get(self, namespace, name)
    }
    fn in_namespace(&self, namespace: &str) -> Vec<Arc<ReplicaSet>> {
        Cache::in_namespace(self, namespace)
    }
}

/// What the controller does about one event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    pub enqueue: Vec<String>,
    pub enqueue_after: Vec<(String, Duration)>,
    /// Keys whose expectations saw one pod created.
    pub creations_observed: Vec<String>,
    /// (ReplicaSet key, pod key) whose expected deletion was seen.
    pub deletions_observed: Vec<(String, String)>,
    /// Keys whose expectations are dropped (the ReplicaSet is gone).
    pub forget: Vec<String>,
}

/// The ReplicaSet a controller reference names, if it is in the cache with that uid
/// (`resolveControllerRef`).
fn resolve(rss: &impl ReplicaSets, namespace: &str, r: &OwnerReference) -> Option<Arc<ReplicaSet>> {
    if r.kind != rss.kind().kind {
        return None;
    }
    rss.get(namespace, &r.name)
        .filter(|rs| rs.metadata.uid.as_deref() == Some(r.uid.as_str()))
}

/// ReplicaSets of the pod's namespace whose selector matches it (`GetPodReplicaSets`); invalid
/// and empty selectors match nothing.
fn matching(rss: &impl ReplicaSets, pod: &Pod) -> Vec<Arc<ReplicaSet>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    rss.in_namespace(ns)
        .into_iter()
        .filter(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| selector(&s.selector).ok())
                .is_some_and(|sel| sel.matches(labels(&pod.metadata)))
        })
        .collect()
}

fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("")
}

fn on_pod_deleted(rss: &impl ReplicaSets, pod: &Pod, fx: &mut Effects) {
    let Some(r) = controller_ref(&pod.metadata) else {
        // Nobody waits for an orphan's deletion.
        return;
    };
    if let Some(rs) = resolve(rss, pod_namespace(pod), r) {
        let key = object_key(&rs.metadata);
        fx.deletions_observed
            .push((key.clone(), object_key(&pod.metadata)));
        fx.enqueue.push(key);
    }
}

fn on_pod_added(rss: &impl ReplicaSets, pod: &Pod, fx: &mut Effects) {
    if pod.metadata.deletion_timestamp.is_some() {
        // Seen already being deleted (e.g. after a restart): not a creation.
        return on_pod_deleted(rss, pod, fx);
    }
    if let Some(r) = controller_ref(&pod.metadata) {
        if let Some(rs) = resolve(rss, pod_namespace(pod), r) {
            let key = object_key(&rs.metadata);
            fx.creations_observed.push(key.clone());
            fx.enqueue.push(key);
        }
        return;
    }
    // An orphan: every matching ReplicaSet may want to adopt it. No creation is observed.
    fx.enqueue
        .extend(matching(rss, pod).iter().map(|rs| object_key(&rs.metadata)));
}

fn on_pod_updated(rss: &impl ReplicaSets, old: &Pod, cur: &Pod, fx: &mut Effects) {
    if old.metadata.resource_version == cur.metadata.resource_version
        && old.metadata.resource_version.is_some()
    {
        // A re-list shows unchanged pods again: nothing happened.
        return;
    }
    let label_changed = old.metadata.labels != cur.metadata.labels;
    if cur.metadata.deletion_timestamp.is_some() {
        // Graceful deletion started: the ReplicaSet replaces the pod now, not when the kubelet
        // finishes.
        on_pod_deleted(rss, cur, fx);
        if label_changed {
            on_pod_deleted(rss, old, fx);
        }
        return;
    }
    let cur_ref = controller_ref(&cur.metadata);
    let old_ref = controller_ref(&old.metadata);
    let ref_changed = cur_ref != old_ref;
    if ref_changed {
        if let Some(r) = old_ref {
            if let Some(rs) = resolve(rss, pod_namespace(old), r) {
                fx.enqueue.push(object_key(&rs.metadata));
            }
        }
    }
    if let Some(r) = cur_ref {
        if let Some(rs) = resolve(rss, pod_namespace(cur), r) {
            let key = object_key(&rs.metadata);
            let min_ready = min_ready_seconds(&rs);
            if !is_pod_ready(old) && is_pod_ready(cur) && min_ready > 0 {
                // Look again once it may be available; a second of slack against clock skew.
                let secs = u64::try_from(min_ready).unwrap_or(0) + 1;
                fx.enqueue_after
                    .push((key.clone(), Duration::from_secs(secs)));
            }
            fx.enqueue.push(key);
        }
        return;
    }
    if label_changed || ref_changed {
        fx.enqueue
            .extend(matching(rss, cur).iter().map(|rs| object_key(&rs.metadata)));
    }
}

/// The effects of a pod event.
pub fn on_pod(change: &Change<Pod>, rss: &impl ReplicaSets) -> Effects {
    let mut fx = Effects::default();
    match change {
        Change::Added(p) => on_pod_added(rss, p, &mut fx),
        Change::Updated { old, new } => on_pod_updated(rss, old, new, &mut fx),
        Change::Deleted(p) => on_pod_deleted(rss, p, &mut fx),
    }
    fx
}

/// The effects of a ReplicaSet event: always sync it; a deleted (or replaced) one forgets its
/// expectations so that a new ReplicaSet of the same name starts clean.
pub fn on_replicaset(change: &Change<ReplicaSet>) -> Effects {
    let mut fx = Effects::default();
    match change {
        Change::Added(rs) => fx.enqueue.push(object_key(&rs.metadata)),
        Change::Updated { old, new } => {
            if old.metadata.uid != new.metadata.uid {
                fx.forget.push(object_key(&old.metadata));
            }
            fx.enqueue.push(object_key(&new.metadata));
        }
        Change::Deleted(rs) => {
            let key = object_key(&rs.metadata);
            fx.forget.push(key.clone());
            fx.enqueue.push(key);
        }
    }
    fx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicaset::sync::testing::rs;
    use crate::util::pod::testing::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    struct Fake(Vec<Arc<ReplicaSet>>);

    impl ReplicaSets for Fake {
        fn get(&self, namespace: &str, name: &str) -> Option<Arc<ReplicaSet>> {
            self.0
                .iter()
                .find(|r| {
                    r.metadata.namespace.as_deref() == Some(namespace)
                        && r.metadata.name.as_deref() == Some(name)
                })
                .cloned()
        }
        fn in_namespace(&self, namespace: &str) -> Vec<Arc<ReplicaSet>> {
            self.0
                .iter()
                .filter(|r| r.metadata.namespace.as_deref() == Some(namespace))
                .cloned()
                .collect()
        }
    }

    fn world() -> Fake {
        let mut web2 = rs("web2", 1);
        web2.metadata.uid = Some("rs-uid-web2".into());
        let mut db = rs("db", 1);
        if let Some(s) = db.spec.as_mut() {
            s.selector.match_labels = Some([("app".to_string(), "db".to_string())].into());
        }
        let mut slow = rs("slow", 1);
        if let Some(s) = slow.spec.as_mut() {
            s.min_ready_seconds = Some(10);
        }
        Fake(vec![
            Arc::new(rs("web", 1)),
            Arc::new(web2),
            Arc::new(db),
            Arc::new(slow),
        ])
    }

    fn mine(name: &str) -> Pod {
        owned_by(pod(name), "ReplicaSet", "web", "rs-uid-web")
    }

    fn rv(mut p: Pod, v: &str) -> Pod {
        p.metadata.resource_version = Some(v.into());
        p
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn an_owned_pod_added_is_an_observed_creation() {
        let fx = on_pod(&Change::Added(Arc::new(mine("p"))), &world());
        assert_eq!(fx.creations_observed, ["ns/web"]);
        assert_eq!(fx.enqueue, ["ns/web"]);
    }

    #[test]
    fn a_stale_owner_uid_resolves_to_nothing() {
        let p = owned_by(pod("p"), "ReplicaSet", "web", "old-uid");
        assert_eq!(
            on_pod(&Change::Added(Arc::new(p)), &world()),
            Effects::default()
        );
        let d = owned_by(pod("p"), "Deployment", "web", "rs-uid-web");
        assert_eq!(
            on_pod(&Change::Added(Arc::new(d)), &world()),
            Effects::default()
        );
    }

    #[test]
    fn an_orphan_added_wakes_every_matching_replicaset() {
        let fx = on_pod(&Change::Added(Arc::new(pod("p"))), &world());
        assert!(fx.creations_observed.is_empty());
        assert_eq!(sorted(fx.enqueue), ["ns/slow", "ns/web", "ns/web2"]);
    }

    #[test]
    fn deletions_and_deletion_timestamps_are_observed_deletions() {
        let fx = on_pod(&Change::Deleted(Arc::new(mine("p"))), &world());
        assert_eq!(
            fx.deletions_observed,
            [("ns/web".to_string(), "ns/p".to_string())]
        );
        let old = rv(mine("p"), "1");
        let mut cur = rv(mine("p"), "2");
        cur.metadata.deletion_timestamp = Some(Time(at(5)));
        let fx = on_pod(
            &Change::Updated {
                old: Arc::new(old),
                new: Arc::new(cur.clone()),
            },
            &world(),
        );
        assert_eq!(
            fx.deletions_observed,
            [("ns/web".to_string(), "ns/p".to_string())]
        );
        // Already being deleted when first seen: a deletion, not a creation.
        let fx = on_pod(&Change::Added(Arc::new(cur)), &world());
        assert!(fx.creations_observed.is_empty());
        assert_eq!(fx.deletions_observed.len(), 1);
        // Orphans' deletions concern nobody.
        assert_eq!(
            on_pod(&Change::Deleted(Arc::new(pod("o"))), &world()),
            Effects::default()
        );
    }

    #[test]
    fn same_resource_version_updates_are_ignored() {
        let p = Arc::new(rv(mine("p"), "7"));
        let fx = on_pod(
            &Change::Updated {
                old: p.clone(),
                new: p,
            },
            &world(),
        );
        assert_eq!(fx, Effects::default());
    }

    #[test]
    fn an_owner_change_wakes_the_old_and_the_new_owner() {
        let old = rv(mine("p"), "1");
        let new = rv(owned_by(pod("p"), "ReplicaSet", "web2", "rs-uid-web2"), "2");
        let fx = on_pod(
            &Change::Updated {
                old: Arc::new(old),
                new: Arc::new(new),
            },
            &world(),
        );
        assert_eq!(fx.enqueue, ["ns/web", "ns/web2"]);
    }

    #[test]
    fn a_relabelled_orphan_wakes_the_replicasets_that_now_match() {
        let old = rv(pod("p"), "1");
        let new = rv(with_labels(pod("p"), &[("app", "db")]), "2");
        let fx = on_pod(
            &Change::Updated {
                old: Arc::new(old.clone()),
                new: Arc::new(new),
            },
            &world(),
        );
        assert_eq!(fx.enqueue, ["ns/db"]);
        // A status-only change of an orphan wakes nobody.
        let fx = on_pod(
            &Change::Updated {
                old: Arc::new(old.clone()),
                new: Arc::new(rv(with_phase(old, "Pending"), "3")),
            },
            &world(),
        );
        assert!(fx.enqueue.is_empty());
    }

    #[test]
    fn becoming_ready_with_min_ready_seconds_schedules_a_second_look() {
        let owner = |p: Pod| owned_by(p, "ReplicaSet", "slow", "rs-uid-slow");
        let old = rv(owner(pod("p")), "1");
        let new = rv(owner(ready_at(pod("p"), Some(at(0)))), "2");
        let fx = on_pod(
            &Change::Updated {
                old: Arc::new(old),
                new: Arc::new(new),
            },
            &world(),
        );
        assert_eq!(fx.enqueue, ["ns/slow"]);
        assert_eq!(
            fx.enqueue_after,
            [("ns/slow".to_string(), Duration::from_secs(11))]
        );
        // Without minReadySeconds there is nothing to wait for.
        let old = rv(mine("p"), "1");
        let new = rv(ready_at(mine("p"), Some(at(0))), "2");
        let fx = on_pod(
            &Change::Updated {
                old: Arc::new(old),
                new: Arc::new(new),
            },
            &world(),
        );
        assert!(fx.enqueue_after.is_empty());
    }

    #[test]
    fn replicaset_events_enqueue_and_deletions_forget() {
        let r = Arc::new(rs("web", 1));
        assert_eq!(on_replicaset(&Change::Added(r.clone())).enqueue, ["ns/web"]);
        let fx = on_replicaset(&Change::Deleted(r.clone()));
        assert_eq!(fx.forget, ["ns/web"]);
        assert_eq!(fx.enqueue, ["ns/web"]);
        let mut recreated = rs("web", 1);
        recreated.metadata.uid = Some("new".into());
        let fx = on_replicaset(&Change::Updated {
            old: r.clone(),
            new: Arc::new(recreated),
        });
        assert_eq!(fx.forget, ["ns/web"]);
        let fx = on_replicaset(&Change::Updated {
            old: r.clone(),
            new: r,
        });
        assert!(fx.forget.is_empty());
        assert_eq!(fx.enqueue, ["ns/web"]);
    }
}
