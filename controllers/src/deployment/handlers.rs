//! What a watch event means for the Deployment controller: which Deployment keys to sync
//! (kube's `addDeployment`/`updateDeployment`/`deleteDeployment`, `addReplicaSet`/
//! `updateReplicaSet`/`deleteReplicaSet` and `deletePod` handlers). Pure: objects are looked up
//! through the [`Lookup`] trait (the caches, or fakes in tests).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::SelectorExt;

use super::util::STRATEGY_RECREATE;
use crate::util::cache::{Cache, Change};
use crate::util::pod::{controller_ref, labels, object_key, selector};

/// Looks up objects by namespace (and name).
pub trait Lookup<K> {
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>>;
    fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>>;
}

impl<K: kube::Resource> Lookup<K> for Cache<K> {
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        Cache::get(self, namespace, name)
    }
    fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        Cache::in_namespace(self, namespace)
    }
}

fn namespace(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("")
}

/// Every change of a Deployment syncs it (a deleted one is found gone and forgotten).
pub fn on_deployment(change: &Change<Deployment>) -> Vec<String> {
    let d = match change {
        Change::Added(d) | Change::Deleted(d) => d,
        Change::Updated { new, .. } => new,
    };
    vec![object_key(&d.metadata)]
}

/// The Deployment a controller reference names, if cached with that uid
/// (`resolveControllerRef`).
fn resolve(ds: &impl Lookup<Deployment>, ns: &str, r: &OwnerReference) -> Option<Arc<Deployment>> {
    if r.kind != "Deployment" {
        return None;
    }
    ds.get(ns, &r.name)
        .filter(|d| d.metadata.uid.as_deref() == Some(r.uid.as_str()))
}

/// Deployments of the ReplicaSet's namespace whose selector matches its labels
/// (`GetDeploymentsForReplicaSet`); empty and invalid selectors match nothing.
fn selecting(ds: &impl Lookup<Deployment>, rs: &ReplicaSet) -> Vec<String> {
    ds.in_namespace(namespace(&rs.metadata))
        .into_iter()
        .filter(|d| {
            d.spec
                .as_ref()
                .and_then(|s| selector(&s.selector).ok())
                .is_some_and(|sel| sel.matches(labels(&rs.metadata)))
        })
        .map(|d| object_key(&d.metadata))
        .collect()
}

fn owner_key(ds: &impl Lookup<Deployment>, rs: &ReplicaSet) -> Option<String> {
    let r = controller_ref(&rs.metadata)?;
    resolve(ds, namespace(&rs.metadata), r).map(|d| object_key(&d.metadata))
}

/// A ReplicaSet change syncs its controlling Deployment; an orphan's (added, or whose labels
/// or controller changed) syncs every Deployment that may adopt it; a controller change also
/// syncs the old controller.
pub fn on_replicaset(change: &Change<ReplicaSet>, ds: &impl Lookup<Deployment>) -> Vec<String> {
    match change {
        Change::Added(rs) => {
            if rs.metadata.deletion_timestamp.is_some() || controller_ref(&rs.metadata).is_some() {
                return owner_key(ds, rs).into_iter().collect();
            }
            selecting(ds, rs)
        }
        Change::Updated { old, new } => {
            if old.metadata.resource_version.is_some()
                && old.metadata.resource_version == new.metadata.resource_version
            {
                // A re-list that brought nothing new.
                return Vec::new();
            }
            let old_ref = controller_ref(&old.metadata);
            let new_ref = controller_ref(&new.metadata);
            let ref_changed = old_ref != new_ref;
            let mut keys = Vec::new();
            if ref_changed && old_ref.is_some() {
                keys.extend(owner_key(ds, old));
            }
            if new_ref.is_some() {
                keys.extend(owner_key(ds, new));
                return keys;
            }
            if ref_changed || old.metadata.labels != new.metadata.labels {
                keys.extend(selecting(ds, new));
            }
            keys
        }
        // Nobody cares about an orphan's deletion.
        Change::Deleted(rs) => owner_key(ds, rs).into_iter().collect(),
    }
}

/// A deleted pod syncs its Deployment (through its ReplicaSet) when that Deployment is
/// Recreate and has no pod left that may still run: Recreate waits for exactly that. kube
/// counts every pod there; pods that finished (Succeeded, Failed) are not counted here, since
/// Recreate does not wait for them and would otherwise never be woken.
pub fn on_pod(
    change: &Change<Pod>,
    rss: &impl Lookup<ReplicaSet>,
    ds: &impl Lookup<Deployment>,
    pods: &impl Lookup<Pod>,
) -> Vec<String> {
    let Change::Deleted(pod) = change else {
        return Vec::new();
    };
    let ns = namespace(&pod.metadata);
    let Some(r) = controller_ref(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
        return Vec::new();
    };
    let Some(rs) = rss
        .get(ns, &r.name)
        .filter(|rs| rs.metadata.uid.as_deref() == Some(r.uid.as_str()))
    else {
        return Vec::new();
    };
    let Some(d) = controller_ref(&rs.metadata).and_then(|r| resolve(ds, ns, r)) else {
        return Vec::new();
    };
    let recreate = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some(STRATEGY_RECREATE);
    if !recreate {
        return Vec::new();
    }
    let d_uid = d.metadata.uid.as_deref();
    let rs_uids: Vec<String> = rss
        .in_namespace(ns)
        .iter()
        .filter(|rs| controller_ref(&rs.metadata).map(|r| r.uid.as_str()) == d_uid)
        .filter_map(|rs| rs.metadata.uid.clone())
        .collect();
    let still_running = pods.in_namespace(ns).iter().any(|p| {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        controller_ref(&p.metadata).is_some_and(|r| rs_uids.contains(&r.uid))
            && !matches!(phase, Some("Succeeded" | "Failed"))
    });
    if still_running {
        return Vec::new();
    }
    vec![object_key(&d.metadata)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::testing::*;
    use crate::deployment::util::controller_ref as owner_of;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use std::collections::BTreeMap;

    struct Fake<K>(Vec<Arc<K>>);

    impl<K: kube::Resource> Lookup<K> for Fake<K> {
        fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
            self.0
                .iter()
                .find(|o| {
                    o.meta().namespace.as_deref() == Some(namespace)
                        && o.meta().name.as_deref() == Some(name)
                })
                .cloned()
        }
        fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
            self.0
                .iter()
                .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
                .cloned()
                .collect()
        }
    }

    fn pod_of(rs: &ReplicaSet, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(format!("{}-p", rs.metadata.name.as_deref().unwrap())),
                namespace: Some("default".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: rs.metadata.name.clone().unwrap(),
                    uid: rs.metadata.uid.clone().unwrap(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn replica_sets_map_to_their_controller_or_to_adopters() {
        let d = deployment("foo", 1, IntOrString::Int(1), IntOrString::Int(0));
        let other = deployment("bar", 1, IntOrString::Int(1), IntOrString::Int(0));
        let ds = Fake(vec![Arc::new(d.clone()), Arc::new(other)]);
        let (ours, _) = rollout_pair(&d);
        assert_eq!(
            on_replicaset(&Change::Added(Arc::new(ours.clone())), &ds),
            ["default/foo"]
        );
        // A controller ref whose uid does not match the cached Deployment resolves to nothing.
        let mut stale = ours.clone();
        stale.metadata.owner_references.as_mut().unwrap()[0].uid = "old-uid".into();
        assert!(on_replicaset(&Change::Added(Arc::new(stale)), &ds).is_empty());
        // An orphan with `app: foo` labels: foo may adopt it, bar may not.
        let mut orphan = ours.clone();
        orphan.metadata.owner_references = None;
        assert_eq!(
            on_replicaset(&Change::Added(Arc::new(orphan.clone())), &ds),
            ["default/foo"]
        );
        assert!(on_replicaset(&Change::Deleted(Arc::new(orphan.clone())), &ds).is_empty());
        // Released: the old controller hears of it, and so do possible adopters.
        let mut released = orphan.clone();
        released.metadata.resource_version = Some("2".into());
        let mut before = ours.clone();
        before.metadata.resource_version = Some("1".into());
        let keys = on_replicaset(
            &Change::Updated {
                old: Arc::new(before.clone()),
                new: Arc::new(released),
            },
            &ds,
        );
        assert_eq!(keys, ["default/foo", "default/foo"]);
        // Same resourceVersion: nothing.
        assert!(on_replicaset(
            &Change::Updated {
                old: Arc::new(before.clone()),
                new: Arc::new(before)
            },
            &ds
        )
        .is_empty());
        // An orphan whose labels changed to bar's.
        let mut relabelled = orphan.clone();
        relabelled.metadata.labels = Some(BTreeMap::from([("app".to_string(), "bar".to_string())]));
        relabelled.metadata.resource_version = Some("3".into());
        orphan.metadata.resource_version = Some("2".into());
        let keys = on_replicaset(
            &Change::Updated {
                old: Arc::new(orphan),
                new: Arc::new(relabelled),
            },
            &ds,
        );
        assert_eq!(keys, ["default/bar"]);
    }

    #[test]
    fn a_recreate_deployment_is_woken_when_its_last_running_pod_goes() {
        let mut d = deployment("foo", 1, IntOrString::Int(1), IntOrString::Int(0));
        set_recreate(&mut d);
        let ds = Fake(vec![Arc::new(d.clone())]);
        let (new, mut old) = rollout_pair(&d);
        old.metadata.owner_references = owner_of(&d).map(|o| vec![o]);
        let rss = Fake(vec![Arc::new(new), Arc::new(old.clone())]);
        let gone = Change::Deleted(Arc::new(pod_of(&old, "Running")));
        // Another pod of the old ReplicaSet still runs: not yet.
        let running = Fake(vec![Arc::new(pod_of(&old, "Running"))]);
        assert!(on_pod(&gone, &rss, &ds, &running).is_empty());
        // Only a finished one is left: now.
        let finished = Fake(vec![Arc::new(pod_of(&old, "Succeeded"))]);
        assert_eq!(on_pod(&gone, &rss, &ds, &finished), ["default/foo"]);
        // Not for RollingUpdate, nor for pod updates.
        let rolling = deployment("foo", 1, IntOrString::Int(1), IntOrString::Int(0));
        let ds_rolling = Fake(vec![Arc::new(rolling)]);
        assert!(on_pod(&gone, &rss, &ds_rolling, &finished).is_empty());
        let updated = Change::Added(Arc::new(pod_of(&old, "Running")));
        assert!(on_pod(&updated, &rss, &ds, &finished).is_empty());
    }
}
