//! The garbage collector end to end: a store member, an apiserver (plain HTTP on loopback), a
//! scheduler, a controller-manager (all its controllers, the collector among them) and simulated
//! nodes, each a process of this binary; kube-rs clients act as users do.
//!
//! Cascading deletion of Deployments with each `propagationPolicy` (the apiserver turns
//! Foreground and Orphan into the `foregroundDeletion` and `orphan` finalizers; the collector
//! does the rest), and owner references to owners that do not exist: a missing uid, an owner of the same name with another
//! uid, an owner in another namespace (`OwnerRefInvalidNamespace`), and a cluster-scoped
//! dependent naming a namespaced owner (never collected).

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use common::eventually;
use common::plane::{Plane, DEADLINE};

/// The tests share two cores: one plane at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn namespace(c: &kube::Client, ns: &str) {
    let n = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &n)
        .await
        .expect("creating a namespace");
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                // Pods take 2 s to stop: a foreground deletion has to wait for them.
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {"mainstay.io/termination-seconds": "2"},
                },
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
            },
        },
    }))
    .expect("a deployment")
}

async fn pods(c: &kube::Client, ns: &str, app: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(c.clone(), ns)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

async fn replica_sets(c: &kube::Client, ns: &str, app: &str) -> Vec<ReplicaSet> {
    Api::<ReplicaSet>::namespaced(c.clone(), ns)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Creates a Deployment and waits for its ReplicaSet and `replicas` pods.
async fn deploy(c: &kube::Client, ns: &str, name: &str, replicas: i32) -> Api<Deployment> {
    let api: Api<Deployment> = Api::namespaced(c.clone(), ns);
    api.create(&PostParams::default(), &deployment(name, replicas))
        .await
        .expect("creating a deployment");
    eventually("the replica set and its pods", DEADLINE, || async {
        let rss = replica_sets(c, ns, name).await;
        let ps = pods(c, ns, name).await;
        (rss.len() == 1 && ps.len() == replicas as usize).then_some(())
    })
    .await;
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_are_deleted_in_the_background_foreground_and_orphaned() {
    let _serial = SERIAL.lock().await;
    let plane = Plane::with_control_plane(2).await;
    let c = &plane.client;
    let ns = "gc-deploy";
    namespace(c, ns).await;

    // Background (the default): the Deployment goes at once, its ReplicaSet and pods after it.
    let api = deploy(c, ns, "bg", 2).await;
    api.delete("bg", &DeleteParams::default())
        .await
        .expect("deleting");
    eventually(
        "the replica set and pods of bg are collected",
        DEADLINE,
        || async {
            (replica_sets(c, ns, "bg").await.is_empty() && pods(c, ns, "bg").await.is_empty())
                .then_some(())
        },
    )
    .await;

    // Foreground: the Deployment stays, being deleted with its finalizer, until no dependent
    // blocks it: its ReplicaSet (deleted in the foreground too) goes after its pods.
    let api = deploy(c, ns, "fg", 2).await;
    // Every state of fg's ReplicaSet from now on, from a watch: whether it was ever seen being
    // deleted in the foreground is read from this history, not from polls that may miss it.
    let rs_history = tokio::spawn({
        use futures::StreamExt;
        use kube::runtime::{watcher, WatchStreamExt};
        let rss = Api::<ReplicaSet>::namespaced(c.clone(), ns);
        async move {
            let mut states = watcher(rss, watcher::Config::default().labels("app=fg"))
                .default_backoff()
                .applied_objects()
                .boxed();
            let mut seen = Vec::new();
            while let Some(Ok(rs)) = states.next().await {
                let foreground = rs.metadata.deletion_timestamp.is_some()
                    && rs
                        .metadata
                        .finalizers
                        .as_ref()
                        .is_some_and(|f| f.iter().any(|f| f == "foregroundDeletion"));
                seen.push(foreground);
                if foreground {
                    break;
                }
            }
            seen
        }
    });
    // The watch has listed the ReplicaSet before the delete.
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.delete("fg", &DeleteParams::foreground())
        .await
        .expect("deleting");
    let d = api
        .get("fg")
        .await
        .expect("still there while its dependents exist");
    assert!(d.metadata.deletion_timestamp.is_some());
    assert!(d
        .metadata
        .finalizers
        .unwrap_or_default()
        .contains(&"foregroundDeletion".to_string()));
    eventually("fg goes after its replica set and pods", DEADLINE, || {
        let api = api.clone();
        async move {
            // Read in this order: what is gone after the Deployment was seen gone stays gone.
            let gone = api.get_opt("fg").await.ok()?.is_none();
            let rss = replica_sets(c, ns, "fg").await;
            let pods_left = pods(c, ns, "fg").await.len();
            if !gone {
                return None;
            }
            assert!(rss.is_empty(), "the Deployment went before its ReplicaSet");
            assert_eq!(pods_left, 0, "the Deployment went before its pods");
            Some(())
        }
    })
    .await;
    let seen = tokio::time::timeout(DEADLINE, rs_history)
        .await
        .expect("the ReplicaSet watch ends once it saw the foreground deletion")
        .expect("the watch task");
    assert_eq!(
        seen.last(),
        Some(&true),
        "the ReplicaSet was deleted in the foreground as well: states seen {seen:?}"
    );

    // Orphan: the references to the Deployment are stripped, the finalizer removed, and the
    // ReplicaSet and pods stay.
    let api = deploy(c, ns, "orph", 2).await;
    api.delete("orph", &DeleteParams::orphan())
        .await
        .expect("deleting");
    eventually("orph goes", DEADLINE, || async {
        api.get_opt("orph").await.ok()?.is_none().then_some(())
    })
    .await;
    let rss = replica_sets(c, ns, "orph").await;
    assert_eq!(rss.len(), 1, "the ReplicaSet stays");
    assert!(
        rss[0]
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(|o| o.is_empty()),
        "its owner reference is stripped: {:?}",
        rss[0].metadata.owner_references
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pods(c, ns, "orph").await.len(), 2, "the pods stay");
    assert_eq!(replica_sets(c, ns, "orph").await.len(), 1);
}

fn config_map(name: &str, owners: Vec<OwnerReference>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: Some(owners),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn reference_to(cm: &ConfigMap) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: cm.metadata.name.clone().unwrap_or_default(),
        uid: cm.metadata.uid.clone().unwrap_or_default(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_to_absent_or_foreign_owners() {
    let _serial = SERIAL.lock().await;
    let plane = Plane::with_control_plane(2).await;
    let c = &plane.client;
    let (a, b) = ("gc-a", "gc-b");
    namespace(c, a).await;
    namespace(c, b).await;
    let cms_a: Api<ConfigMap> = Api::namespaced(c.clone(), a);
    let cms_b: Api<ConfigMap> = Api::namespaced(c.clone(), b);
    let pp = PostParams::default();
    let parent = cms_a
        .create(&pp, &config_map("parent", vec![]))
        .await
        .expect("parent");

    // An owner uid that does not exist: collected.
    let ghost = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "ghost".into(),
        uid: "00000000-0000-0000-0000-00000000dead".into(),
        ..Default::default()
    };
    cms_a
        .create(&pp, &config_map("orphaned", vec![ghost.clone()]))
        .await
        .expect("dependent");
    // The owner's name with another uid counts as absent too.
    let mut impostor = reference_to(&parent);
    impostor.uid = "00000000-0000-0000-0000-00000000beef".into();
    cms_a
        .create(&pp, &config_map("impostor-child", vec![impostor]))
        .await
        .expect("dependent");
    // One live owner and one absent: only the absent reference goes.
    cms_a
        .create(
            &pp,
            &config_map("half", vec![reference_to(&parent), ghost.clone()]),
        )
        .await
        .expect("dependent");
    // A dependent in b naming the owner in a: reported, and (the owner being absent in b) collected.
    let foreign = cms_b
        .create(&pp, &config_map("foreign", vec![reference_to(&parent)]))
        .await
        .expect("dependent");
    // A cluster-scoped dependent naming a namespaced owner: never collected.
    let cluster_dep = Namespace {
        metadata: ObjectMeta {
            name: Some("gc-cluster-dependent".into()),
            owner_references: Some(vec![reference_to(&parent)]),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(c.clone())
        .create(&pp, &cluster_dep)
        .await
        .expect("cluster-scoped dependent");

    for name in ["orphaned", "impostor-child"] {
        eventually(&format!("{name} is collected"), DEADLINE, || async {
            cms_a.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
    let half = eventually("half loses the dangling reference", DEADLINE, || async {
        let cm = cms_a.get("half").await.ok()?;
        (cm.metadata.owner_references.as_ref()?.len() == 1).then_some(cm)
    })
    .await;
    assert_eq!(
        half.metadata.owner_references.expect("references")[0].uid,
        parent.metadata.uid.clone().expect("uid")
    );

    let foreign_uid = foreign.metadata.uid.clone().expect("uid");
    let event = eventually(
        "an OwnerRefInvalidNamespace Event on foreign",
        DEADLINE,
        || async {
            Api::<Event>::namespaced(c.clone(), b)
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("OwnerRefInvalidNamespace")
                        && e.involved_object.uid.as_deref() == Some(foreign_uid.as_str())
                })
        },
    )
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(
        event.message.as_deref(),
        Some(
            format!(
                "ownerRef [v1/ConfigMap, namespace: gc-b, name: parent, uid: {}] does not exist in namespace \"gc-b\"",
                parent.metadata.uid.clone().expect("uid")
            )
            .as_str()
        )
    );
    assert_eq!(
        event.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("garbage-collector-controller")
    );
    eventually("foreign is collected", DEADLINE, || async {
        cms_b.get_opt("foreign").await.ok()?.is_none().then_some(())
    })
    .await;

    // Everything above took the collector several rounds: the cluster-scoped dependent and the
    // parent are still there.
    assert!(Api::<Namespace>::all(c.clone())
        .get_opt("gc-cluster-dependent")
        .await
        .expect("get")
        .is_some());
    assert!(cms_a.get_opt("parent").await.expect("get").is_some());
    assert!(cms_a.get_opt("half").await.expect("get").is_some());
}
