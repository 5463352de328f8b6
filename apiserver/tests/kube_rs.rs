//! kube-rs, unchanged, as a client of the apiserver: typed CRUD, subresources, watchers and
//! reflectors, two replicas on one store, and bad input. Each test gets its own store (etcd or
//! mainstay, per `MAINSTAY_TEST_TARGET`) and its own apiserver served in-process.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Binding, ConfigMap, ObjectReference, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, ResourceExt, WatchEvent,
    WatchParams,
};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use serde_json::json;

use support::{eventually, within, Env, Proxy, Server, DEADLINE};

/// The `ErrorResponse` of a failed call (panics on success or on a non-API error).
fn api_error<T: std::fmt::Debug>(r: kube::Result<T>) -> kube::core::ErrorResponse {
    match r {
        Err(kube::Error::Api(e)) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{
            "name": "c", "image": "nginx:1",
            "env": [{"name": "KEEP", "value": "me"}],
        }]},
    }))
    .unwrap()
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
            },
        },
    }))
    .unwrap()
}

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
            },
        },
    }))
    .unwrap()
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items.iter().map(|o| o.name_any()).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. CRUD
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_configmaps_with_selectors_paging_conflicts_and_patches() {
    let env = Env::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let pp = PostParams::default();

    // Create, get, create twice.
    let created = cms
        .create(&pp, &cm("one", &[("tier", "front")], &[("k", "v")]))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1 = created.resource_version().expect("resourceVersion");
    let got = cms.get("one").await.unwrap();
    assert_eq!(got.data.as_ref().unwrap()["k"], "v");
    assert_eq!(got.resource_version().as_deref(), Some(rv1.as_str()));
    let e = api_error(cms.create(&pp, &cm("one", &[], &[])).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"), "{e:?}");

    // 25 more, 10 of them labelled tier=back; page through all with limit 10.
    for i in 0..25 {
        let tier = if i % 5 < 2 { "back" } else { "middle" };
        cms.create(&pp, &cm(&format!("page-{i:02}"), &[("tier", tier)], &[]))
            .await
            .unwrap();
    }
    let back = cms
        .list(&ListParams::default().labels("tier=back"))
        .await
        .unwrap();
    assert_eq!(back.items.len(), 10, "{:?}", names(&back.items));
    assert!(back
        .items
        .iter()
        .all(|c| c.labels().get("tier").map(String::as_str) == Some("back")));
    let not_middle = cms
        .list(&ListParams::default().labels("tier,tier notin (middle)"))
        .await
        .unwrap();
    let mut expected: Vec<String> = (0..25)
        .filter(|i| i % 5 < 2)
        .map(|i| format!("page-{i:02}"))
        .collect();
    expected.insert(0, "one".into());
    assert_eq!(names(&not_middle.items), expected);

    let sel = ListParams::default()
        .labels("tier in (back,middle)")
        .limit(10);
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut page = cms.list(&sel).await.unwrap();
    loop {
        pages.push(page.items.len());
        seen.extend(names(&page.items));
        match page.metadata.continue_.clone().filter(|c| !c.is_empty()) {
            Some(token) => {
                assert!(
                    page.metadata.remaining_item_count.unwrap_or(1) > 0,
                    "{:?}",
                    page.metadata
                );
                page = cms.list(&sel.clone().continue_token(&token)).await.unwrap();
            }
            None => break,
        }
    }
    assert_eq!(pages, vec![10, 10, 5]);
    let all: Vec<String> = (0..25).map(|i| format!("page-{i:02}")).collect();
    assert_eq!(seen, all, "pages must be disjoint and in order");

    // Replace with the current version works, with a stale one conflicts.
    let mut fresh = cms.get("one").await.unwrap();
    fresh.data = Some(BTreeMap::from([("k".to_string(), "v2".to_string())]));
    let replaced = cms.replace("one", &pp, &fresh).await.unwrap();
    assert_ne!(replaced.resource_version(), Some(rv1.clone()));
    let mut stale = got.clone();
    stale.data = Some(BTreeMap::from([("k".to_string(), "lost".to_string())]));
    let e = api_error(cms.replace("one", &pp, &stale).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"), "{e:?}");
    assert_eq!(cms.get("one").await.unwrap().data.unwrap()["k"], "v2");

    // Merge patch adds a key and keeps the rest; JSON patch edits labels.
    let patched = cms
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"added": "yes"}})),
        )
        .await
        .unwrap();
    let data = patched.data.unwrap();
    assert_eq!((data["k"].as_str(), data["added"].as_str()), ("v2", "yes"));
    // (kube's Patch::Json takes json_patch's type, inferred here from the variant.)
    let ops = serde_json::from_value(json!([
        {"op": "add", "path": "/metadata/labels/extra", "value": "x"},
        {"op": "remove", "path": "/data/k"},
    ]))
    .unwrap();
    let patched = cms
        .patch("one", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    assert_eq!(patched.labels()["extra"], "x");
    assert_eq!(
        patched.data.unwrap().keys().collect::<Vec<_>>(),
        vec!["added"]
    );

    // Delete, then 404; delete again is 404 too.
    cms.delete("one", &DeleteParams::default()).await.unwrap();
    let e = api_error(cms.get("one").await);
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"), "{e:?}");
    let e = api_error(cms.delete("one", &DeleteParams::default()).await);
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"), "{e:?}");
    assert!(cms.get_opt("one").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_pods_and_deployments_with_strategic_and_apply_patches() {
    let env = Env::start().await;
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
    let deploys: Api<Deployment> = Api::default_namespaced(env.client.clone());
    let pp = PostParams::default();

    // Pods: create, get, list by label, strategic merge keyed by container name.
    pods.create(&pp, &pod("web-1")).await.unwrap();
    let mut other = pod("db-1");
    other.metadata.labels = Some(BTreeMap::from([("app".into(), "db".into())]));
    pods.create(&pp, &other).await.unwrap();
    let e = api_error(pods.create(&pp, &pod("web-1")).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"), "{e:?}");
    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(names(&web.items), vec!["web-1"]);
    let got = pods.get("web-1").await.unwrap();
    assert_eq!(
        got.spec.as_ref().unwrap().containers[0].image.as_deref(),
        Some("nginx:1")
    );

    let patched = pods
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}})),
        )
        .await
        .unwrap();
    let c = &patched.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("nginx:2"));
    // A strategic merge merges the container by name: its env survives (a merge patch would
    // have replaced the whole list).
    assert_eq!(
        c.env.as_ref().map(|e| e[0].name.as_str()),
        Some("KEEP"),
        "{c:?}"
    );

    // Stale replace conflicts.
    let mut stale = got.clone();
    stale.metadata.labels = Some(BTreeMap::from([("app".into(), "stale".into())]));
    let e = api_error(pods.replace("web-1", &pp, &stale).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"), "{e:?}");

    pods.delete("web-1", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let e = api_error(pods.get("web-1").await);
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"), "{e:?}");

    // Deployments: create, replace, server-side apply with conflicts and force.
    let d = deploys.create(&pp, &deployment("app", 1)).await.unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(1));
    let e = api_error(deploys.create(&pp, &deployment("app", 1)).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"), "{e:?}");
    let mut next = d.clone();
    next.spec.as_mut().unwrap().replicas = Some(2);
    let replaced = deploys.replace("app", &pp, &next).await.unwrap();
    assert_eq!(replaced.spec.unwrap().replicas, Some(2));
    let e = api_error(deploys.replace("app", &pp, &d).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"), "{e:?}");

    let applied = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
            },
        },
    });
    // spec.replicas belongs to the manager that created and replaced it: applying another
    // value without force conflicts, with force takes the field over.
    let e = api_error(
        deploys
            .patch("app", &PatchParams::apply("mgr-a"), &Patch::Apply(&applied))
            .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"), "{e:?}");
    let forced = deploys
        .patch(
            "app",
            &PatchParams::apply("mgr-a").force(),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.as_ref().unwrap().replicas, Some(5));
    let managers: Vec<(String, String)> = forced
        .managed_fields()
        .iter()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("mgr-a".into(), "Apply".into())),
        "{managers:?}"
    );
    // Merge and strategic patches on the deployment.
    let merged = deploys
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"m": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.labels()["m"], "1");
    assert_eq!(merged.spec.unwrap().replicas, Some(5));

    deploys
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    let e = api_error(deploys.get("app").await);
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"), "{e:?}");
    let e = api_error(deploys.get_status("app").await);
    assert_eq!(e.code, 404, "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. Subresources
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_scale_and_binding_subresources() {
    let env = Env::start().await;
    let deploys: Api<Deployment> = Api::default_namespaced(env.client.clone());
    let rss: Api<ReplicaSet> = Api::default_namespaced(env.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
    let pp = PostParams::default();

    let d = deploys.create(&pp, &deployment("web", 2)).await.unwrap();

    // replace_status: the status changes, the spec sent along is ignored.
    let mut body = serde_json::to_value(&d).unwrap();
    body["spec"]["replicas"] = json!(7);
    body["status"] = json!({"replicas": 5, "readyReplicas": 4, "observedGeneration": 1});
    let st = deploys
        .replace_status("web", &pp, serde_json::to_vec(&body).unwrap())
        .await
        .unwrap();
    assert_eq!(st.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(st.status.as_ref().unwrap().replicas, Some(5));
    let got = deploys.get("web").await.unwrap();
    assert_eq!(got.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(got.status.as_ref().unwrap().ready_replicas, Some(4));
    assert_eq!(
        got.metadata.generation, d.metadata.generation,
        "status writes keep the generation"
    );

    // patch_status likewise.
    let st = deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}, "status": {"availableReplicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(st.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(st.status.as_ref().unwrap().available_replicas, Some(3));
    assert_eq!(st.status.as_ref().unwrap().replicas, Some(5));
    assert_eq!(
        deploys
            .get_status("web")
            .await
            .unwrap()
            .status
            .unwrap()
            .available_replicas,
        Some(3)
    );

    // And the main resource ignores status.
    let mut body = deploys.get("web").await.unwrap();
    body.status.as_mut().unwrap().replicas = Some(99);
    body.metadata.labels = Some(BTreeMap::from([("edited".into(), "yes".into())]));
    let main = deploys.replace("web", &pp, &body).await.unwrap();
    assert_eq!(main.labels()["edited"], "yes");
    assert_eq!(main.status.unwrap().replicas, Some(5));

    // Scale on deployments and replicasets.
    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(scale.metadata.name.as_deref(), Some("web"));
    let scale = deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(4));
    assert_eq!(
        deploys.get("web").await.unwrap().spec.unwrap().replicas,
        Some(4)
    );

    rss.create(&pp, &replicaset("rs", 1)).await.unwrap();
    assert_eq!(
        rss.get_scale("rs").await.unwrap().spec.unwrap().replicas,
        Some(1)
    );
    let scale = rss
        .patch_scale(
            "rs",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(rss.get("rs").await.unwrap().spec.unwrap().replicas, Some(3));
    let e = api_error(deploys.get_scale("missing").await);
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"), "{e:?}");

    // Binding sets spec.nodeName, once.
    pods.create(&pp, &pod("p")).await.unwrap();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some("p".into()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some("node-1".into()),
            ..Default::default()
        },
    };
    let _: kube::core::Status = pods
        .create_subresource("binding", "p", &pp, serde_json::to_vec(&binding).unwrap())
        .await
        .unwrap();
    let bound = pods.get("p").await.unwrap();
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("node-1"));
    let r: kube::Result<kube::core::Status> = pods
        .create_subresource("binding", "p", &pp, serde_json::to_vec(&binding).unwrap())
        .await;
    let e = api_error(r);
    assert_eq!(e.code, 409, "a bound pod cannot be bound again: {e:?}");

    // A bound pod deleted with a grace period waits for its kubelet: it is marked, not removed,
    // and a status update during the grace period (what a kubelet sends) does not remove it.
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    let marked = pods
        .get("p")
        .await
        .expect("still there during its grace period");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    let mut status = marked.clone();
    status.status.get_or_insert_with(Default::default).phase = Some("Running".into());
    pods.replace_status("p", &pp, serde_json::to_vec(&status).unwrap())
        .await
        .unwrap();
    assert_eq!(
        pods.get("p")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Running")
    );
    // The kubelet's final delete with grace 0 removes it.
    pods.delete("p", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(pods.get_opt("p").await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// 3. Watcher: events, then 410 after compaction and a re-list
// ---------------------------------------------------------------------------------------------

/// Takes watcher events until `done` says so, failing after the deadline.
async fn take_until<S>(
    stream: &mut S,
    what: &str,
    mut done: impl FnMut(&[watcher::Event<ConfigMap>]) -> bool,
) -> Vec<watcher::Event<ConfigMap>>
where
    S: futures::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin,
{
    let mut got = Vec::new();
    let mut errors = Vec::new();
    within(what, async {
        while !done(&got) {
            match stream.next().await {
                Some(Ok(ev)) => got.push(ev),
                Some(Err(e)) => errors.push(e.to_string()),
                None => panic!("watcher ended: {errors:?}"),
            }
        }
    })
    .await;
    got
}

fn describe(ev: &watcher::Event<ConfigMap>) -> String {
    match ev {
        watcher::Event::Apply(o) => format!("Apply({})", o.name_any()),
        watcher::Event::Delete(o) => format!("Delete({})", o.name_any()),
        watcher::Event::Init => "Init".into(),
        watcher::Event::InitApply(o) => format!("InitApply({})", o.name_any()),
        watcher::Event::InitDone => "InitDone".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_changes_and_relists_after_compaction() {
    let env = Env::start().await;
    let writer: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let pp = PostParams::default();
    writer
        .create(&pp, &cm("a", &[("w", "1")], &[]))
        .await
        .unwrap();

    // The watcher goes through a proxy, so the test can cut it off.
    let proxy = Proxy::start(env.server.addr).await;
    let watched: Api<ConfigMap> = Api::default_namespaced(support::client_for(&proxy.url()));
    let mut stream = watcher(watched, watcher::Config::default().labels("w=1")).boxed();

    let evs = take_until(&mut stream, "the initial list", |e| {
        matches!(e.last(), Some(watcher::Event::InitDone))
    })
    .await;
    let seq: Vec<String> = evs.iter().map(describe).collect();
    assert_eq!(seq, vec!["Init", "InitApply(a)", "InitDone"]);

    // ADDED, MODIFIED, DELETED from another client.
    writer
        .create(&pp, &cm("b", &[("w", "1")], &[("v", "1")]))
        .await
        .unwrap();
    writer
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await
        .unwrap();
    writer.delete("b", &DeleteParams::default()).await.unwrap();
    let evs = take_until(&mut stream, "b's add, modify and delete", |e| {
        matches!(e.last(), Some(watcher::Event::Delete(_)))
    })
    .await;
    assert_eq!(
        evs.len(),
        3,
        "{:?}",
        evs.iter().map(describe).collect::<Vec<_>>()
    );
    match (&evs[0], &evs[1], &evs[2]) {
        (watcher::Event::Apply(x), watcher::Event::Apply(y), watcher::Event::Delete(z)) => {
            assert_eq!(x.data.as_ref().unwrap()["v"], "1");
            assert_eq!(y.data.as_ref().unwrap()["v"], "2");
            assert_eq!(z.name_any(), "b");
        }
        _ => panic!("{:?}", evs.iter().map(describe).collect::<Vec<_>>()),
    }
    let old_rv = match &evs[2] {
        watcher::Event::Delete(z) => z.resource_version().unwrap(),
        _ => unreachable!(),
    };
    // A watch from a version still in the store's history replays what came after it.
    let added_rv = match &evs[0] {
        watcher::Event::Apply(x) => x.resource_version().unwrap(),
        _ => unreachable!(),
    };
    let mut replay = writer
        .watch(&WatchParams::default().labels("w=1"), &added_rv)
        .await
        .unwrap()
        .boxed();
    let mut replayed = Vec::new();
    within("the replay of b's changes", async {
        while replayed.len() < 2 {
            match replay.next().await {
                Some(Ok(WatchEvent::Bookmark(_))) => {}
                Some(Ok(WatchEvent::Modified(o))) => {
                    replayed.push(format!("MODIFIED {}", o.name_any()))
                }
                Some(Ok(WatchEvent::Deleted(o))) => {
                    replayed.push(format!("DELETED {}", o.name_any()))
                }
                other => panic!("unexpected in the replay: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(replayed, vec!["MODIFIED b", "DELETED b"]);
    drop(replay);

    // Cut the watcher off; meanwhile changes happen and the store is compacted past them.
    proxy.cut().await;
    writer
        .create(&pp, &cm("c", &[("w", "1")], &[]))
        .await
        .unwrap();
    writer
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"after": "cut"}})),
        )
        .await
        .unwrap();
    writer
        .create(&pp, &cm("unrelated", &[], &[]))
        .await
        .unwrap();
    let compacted = env.compact_store().await;
    assert!(compacted > old_rv.parse::<i64>().unwrap() + 1);

    // A fresh watch from the old version is told it expired.
    let mut raw = writer
        .watch(&WatchParams::default().labels("w=1"), &old_rv)
        .await
        .map(|s| s.boxed());
    let gone = match &mut raw {
        Ok(s) => match within("a watch from a compacted version", s.next()).await {
            Some(Ok(WatchEvent::Error(e))) => e,
            other => panic!("expected a 410 ERROR event, got {other:?}"),
        },
        Err(kube::Error::Api(e)) => e.clone(),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        (gone.code, gone.reason.as_str()),
        (410, "Expired"),
        "{gone:?}"
    );

    // Back on: the watcher's resumed watch gets 410, it re-lists and carries on.
    proxy.restore();
    let evs = take_until(&mut stream, "a re-list after 410", |e| {
        matches!(e.last(), Some(watcher::Event::InitDone))
    })
    .await;
    let seq: Vec<String> = evs.iter().map(describe).collect();
    assert_eq!(
        seq,
        vec!["Init", "InitApply(a)", "InitApply(c)", "InitDone"]
    );
    match &evs[1] {
        watcher::Event::InitApply(a) => assert_eq!(a.data.as_ref().unwrap()["after"], "cut"),
        _ => unreachable!(),
    }
    writer
        .create(&pp, &cm("d", &[("w", "1")], &[]))
        .await
        .unwrap();
    let evs = take_until(&mut stream, "a change after the re-list", |e| !e.is_empty()).await;
    assert_eq!(
        evs.iter().map(describe).collect::<Vec<_>>(),
        vec!["Apply(d)"]
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Reflector under concurrent writes
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_converges_under_concurrent_writes() {
    reflector_converges(Env::start().await).await;
}

/// `--watch-cache=false`: every watch is a store watch of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_converges_without_the_watch_cache() {
    reflector_converges(Env::start_with(|c| c.watch_cache = false).await).await;
}

async fn reflector_converges(env: Env) {
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let (reader, writer) = reflector::store::<ConfigMap>();
    let refl = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().labels("load=1")),
    )
    .default_backoff()
    .applied_objects();
    let driver = tokio::spawn(async move {
        futures::pin_mut!(refl);
        while let Some(r) = refl.next().await {
            if let Err(e) = r {
                eprintln!("reflector: {e}");
            }
        }
    });
    within("the reflector's first list", reader.wait_until_ready())
        .await
        .unwrap();

    // 4 writers, 50 operations each, on overlapping names.
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let api = Api::<ConfigMap>::default_namespaced(env.server.client());
        tasks.push(tokio::spawn(async move {
            let mut seed = w * 7919 + 17;
            let mut next = move || {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) as usize
            };
            let pp = PostParams::default();
            for i in 0..50 {
                let name = format!("cm-{}", next() % 24);
                let r = match next() % 3 {
                    0 => api
                        .create(&pp, &cm(&name, &[("load", "1")], &[("w", &w.to_string())]))
                        .await
                        .map(|_| ()),
                    1 => api
                        .patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"data": {"i": i.to_string()}})),
                        )
                        .await
                        .map(|_| ()),
                    _ => api
                        .delete(&name, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                };
                match r {
                    Ok(()) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => panic!("writer {w}: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        within("the writers", t).await.unwrap();
    }

    let truth: BTreeMap<String, String> = api
        .list(&ListParams::default().labels("load=1"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| (c.name_any(), c.resource_version().unwrap()))
        .collect();
    assert!(!truth.is_empty());
    let mut last = BTreeMap::new();
    let converged = tokio::time::timeout(DEADLINE, async {
        loop {
            last = reader
                .state()
                .iter()
                .map(|c| (c.name_any(), c.resource_version().unwrap()))
                .collect::<BTreeMap<_, _>>();
            if last == truth {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        converged.is_ok(),
        "the reflector did not converge:\n store {last:?}\n truth {truth:?}"
    );
    driver.abort();
}

// ---------------------------------------------------------------------------------------------
// 5. Two replicas on one store
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_store_and_survive_one_going_away() {
    let env = Env::start().await;
    let a = &env.server;
    let b = Server::start(&env.cluster).await;
    let on_a: Api<ConfigMap> = Api::default_namespaced(a.client());
    let on_b: Api<ConfigMap> = Api::default_namespaced(b.client());
    let pp = PostParams::default();

    let rv = on_b
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watch_b = on_b
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let created = on_a
        .create(&pp, &cm("from-a", &[], &[("x", "1")]))
        .await
        .unwrap();
    let ev = within("A's write in B's watch", async {
        loop {
            match watch_b.next().await {
                Some(Ok(WatchEvent::Bookmark(_))) => continue,
                other => return other,
            }
        }
    })
    .await;
    match ev {
        Some(Ok(WatchEvent::Added(o))) => {
            assert_eq!(o.name_any(), "from-a");
            assert_eq!(o.resource_version(), created.resource_version());
        }
        other => panic!("expected ADDED from-a, got {other:?}"),
    }
    // B reads A's write at once.
    assert_eq!(on_b.get("from-a").await.unwrap().data.unwrap()["x"], "1");

    // A goes away.
    let a_url = a.url();
    a.task.abort();
    eventually("replica A to stop accepting connections", || {
        let url = a_url.clone();
        async move {
            let fresh: Api<ConfigMap> = Api::default_namespaced(support::client_for(&url));
            fresh
                .list(&ListParams::default())
                .await
                .is_err()
                .then_some(())
        }
    })
    .await;

    // B carries on: create, list, watch.
    let rv = on_b
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watch_b = on_b
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    on_b.create(&pp, &cm("from-b", &[], &[])).await.unwrap();
    let listed = on_b.list(&ListParams::default()).await.unwrap();
    let listed: BTreeSet<String> = names(&listed.items).into_iter().collect();
    assert!(
        listed.contains("from-a") && listed.contains("from-b"),
        "{listed:?}"
    );
    let ev = within("B's own write in B's watch", async {
        loop {
            match watch_b.next().await {
                Some(Ok(WatchEvent::Bookmark(_))) => continue,
                other => return other,
            }
        }
    })
    .await;
    match ev {
        Some(Ok(WatchEvent::Added(o))) => assert_eq!(o.name_any(), "from-b"),
        other => panic!("expected ADDED from-b, got {other:?}"),
    }
    // And a watcher (list + watch) on B works from scratch.
    let mut w = watcher(on_b.clone(), watcher::Config::default()).boxed();
    let evs = take_until(&mut w, "a fresh watcher on B", |e| {
        matches!(e.last(), Some(watcher::Event::InitDone))
    })
    .await;
    let got: BTreeSet<String> = evs
        .iter()
        .filter_map(|e| match e {
            watcher::Event::InitApply(o) => Some(o.name_any()),
            _ => None,
        })
        .collect();
    assert_eq!(got, listed);
}

/// A replica that starts beside a resource of 6,000 ConfigMaps of 1 KiB fills its watch cache and
/// serves all of them: its fill pages used to be 5,000 objects (about 6 MB), over the etcd
/// client's default 4 MiB receive limit, and it never became ready. A value in the store that is
/// not JSON is logged and skipped, in the fill and in the cache's watch, instead of leaving the
/// cache stale while it reports ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_fills_its_cache_from_a_large_resource_and_skips_bad_values() {
    use etcd_client::{Txn, TxnOp};
    let env = Env::start().await;
    let mut etcd = env.cluster.client(0).await;
    let filler = "x".repeat(1024);
    for batch in 0..60 {
        let ops: Vec<TxnOp> = (0..100)
            .map(|i| {
                let name = format!("big-{:05}", batch * 100 + i);
                let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default",
                                 "creationTimestamp": "2026-01-01T00:00:00Z"},
                    "data": {"k": filler}});
                TxnOp::put(
                    format!("/registry/configmaps/default/{name}"),
                    object.to_string(),
                    None,
                )
            })
            .collect();
        etcd.txn(Txn::new().and_then(ops)).await.unwrap();
    }
    etcd.put("/registry/configmaps/default/not-json", "{oops", None)
        .await
        .unwrap();

    let b = Server::start(&env.cluster).await;
    let on_b: Api<ConfigMap> = Api::default_namespaced(b.client());
    let cached = ListParams::default().match_any(); // resourceVersion=0: from the watch cache
    let listed = eventually("the new replica's cache serves every ConfigMap", || async {
        let list = on_b.list(&cached).await.ok()?;
        (list.items.len() >= 6_000).then_some(list)
    })
    .await;
    assert_eq!(
        listed.items.len(),
        6_000,
        "every ConfigMap but the one that is not JSON"
    );
    let ready = b
        .client()
        .request_text(http::Request::get("/readyz").body(vec![]).unwrap())
        .await
        .unwrap();
    assert_eq!(ready, "ok");

    // Changes after another value that is not JSON still reach the cache.
    etcd.put("/registry/configmaps/default/not-json-2", "nope", None)
        .await
        .unwrap();
    let on_a: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    on_a.create(&PostParams::default(), &cm("after-bad", &[], &[("k", "v")]))
        .await
        .unwrap();
    for (replica, api) in [("A", &on_a), ("B", &on_b)] {
        eventually(
            &format!("replica {replica}'s cache follows past a bad value"),
            || async {
                let list = api.list(&cached).await.ok()?;
                list.items
                    .iter()
                    .any(|c| c.name_any() == "after-bad")
                    .then_some(())
            },
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input
// ---------------------------------------------------------------------------------------------

/// Sends a raw request and returns the error status (code, reason).
async fn raw_status(client: &kube::Client, req: http::Request<Vec<u8>>) -> (u16, String) {
    let what = format!("{} {}", req.method(), req.uri());
    match client.request_text(req).await {
        Err(kube::Error::Api(e)) => {
            assert_ne!(e.code, 500, "{what}: {e:?}");
            assert_eq!(e.status, "Failure", "{what}: not a Status: {e:?}");
            (e.code, e.reason)
        }
        other => panic!("{what}: expected an error Status, got {other:?}"),
    }
}

fn post(path: &str, body: impl Into<Vec<u8>>) -> http::Request<Vec<u8>> {
    http::Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_status_never_a_500() {
    let env = Env::start().await;
    let c = &env.client;
    let cms = "/api/v1/namespaces/default/configmaps";

    // (A patch of a missing object is a 404 before its body is read, as on kube-apiserver.)
    let typed: Api<ConfigMap> = Api::default_namespaced(c.clone());
    typed
        .create(&PostParams::default(), &cm("exists", &[], &[("k", "v")]))
        .await
        .unwrap();

    let cases: Vec<(&str, http::Request<Vec<u8>>, u16, &str)> = vec![
        (
            "malformed JSON",
            post(cms, "{\"apiVersion\": \"v1\", "),
            400,
            "BadRequest",
        ),
        ("not an object", post(cms, "[1, 2]"), 400, "BadRequest"),
        (
            "wrong kind",
            post(
                cms,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
                    .to_string(),
            ),
            400,
            "BadRequest",
        ),
        (
            "wrong apiVersion",
            post(
                cms,
                json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
                    .to_string(),
            ),
            400,
            "BadRequest",
        ),
        (
            "unknown field, strict",
            post(
                &format!("{cms}?fieldValidation=Strict"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                       "bogus": 1})
                .to_string(),
            ),
            400,
            "BadRequest",
        ),
        (
            "invalid name",
            post(
                cms,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}})
                    .to_string(),
            ),
            422,
            "Invalid",
        ),
        (
            "no name",
            post(
                cms,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}).to_string(),
            ),
            422,
            "Invalid",
        ),
        (
            "bad labelSelector",
            http::Request::get(format!("{cms}?labelSelector=a%20in%20(b"))
                .body(vec![])
                .unwrap(),
            400,
            "BadRequest",
        ),
        (
            "bad labelSelector on a watch",
            http::Request::get(format!("{cms}?watch=true&labelSelector=%3D%3Dx"))
                .body(vec![])
                .unwrap(),
            400,
            "BadRequest",
        ),
        (
            "malformed merge patch",
            http::Request::patch(format!("{cms}/exists"))
                .header("content-type", "application/merge-patch+json")
                .body(b"{nope".to_vec())
                .unwrap(),
            400,
            "BadRequest",
        ),
    ];
    for (what, req, code, reason) in cases {
        let got = raw_status(c, req).await;
        assert_eq!(got, (code, reason.to_string()), "{what}");
    }

    // A YAML alias bomb: 30 KB whose aliases repeat a 5,000-item list 2,000 times (10 million
    // nodes). serde_yaml's own limit counts alias jumps and lets this through; the decoder's
    // bound on what aliases expand to refuses it.
    let items = vec!["x"; 5_000].join(",");
    let aliases = vec!["*a"; 2_000].join(",");
    let bomb = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: lol}}\na: &a [{items}]\nb: [{aliases}]\n"
    );
    let req = http::Request::post(cms)
        .header("content-type", "application/yaml")
        .body(bomb.into_bytes())
        .unwrap();
    assert_eq!(
        raw_status(c, req).await,
        (400, "BadRequest".to_string()),
        "alias bomb"
    );

    // A body over 3 MiB.
    let big = "x".repeat(3 * 1024 * 1024 + 1024);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                      "data": {"big": big}})
    .to_string();
    let (code, _) = raw_status(c, post(cms, body)).await;
    assert_eq!(code, 413);

    // An invalid name through kube's typed create.
    let e = api_error(
        typed
            .create(&PostParams::default(), &cm("Bad_Name", &[], &[]))
            .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");

    // Nothing else got stored, and the patched object is unchanged.
    let left = typed.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&left.items), vec!["exists"]);
    assert_eq!(left.items[0].data.as_ref().unwrap()["k"], "v");
}

// ---------------------------------------------------------------------------------------------
// 7. Authentication on plain HTTP
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_and_a_forged_certificate_header_is_not_trusted() {
    let dir = std::env::temp_dir().join(format!("mainstay-kube-rs-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens.csv");
    std::fs::write(&tokens, "s3cret,alice,1001\n").unwrap();
    let path = tokens.clone();
    let env = Env::start_with(move |c| c.token_auth_file = Some(path)).await;
    let c = &env.client;
    let list = "/api/v1/namespaces/default/configmaps";
    let get = |headers: &[(&str, &str)]| {
        let mut b = http::Request::get(list);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(vec![]).unwrap()
    };

    assert_eq!(raw_status(c, get(&[])).await, (401, "Unauthorized".into()));
    assert_eq!(
        raw_status(c, get(&[("authorization", "Bearer wrong")])).await,
        (401, "Unauthorized".into())
    );
    // The header the TLS layer sets for a verified client certificate is stripped from every
    // request, so over plain HTTP it proves nothing.
    assert_eq!(
        raw_status(c, get(&[("x-mainstay-client-cert-user", "admin")])).await,
        (401, "Unauthorized".into())
    );
    let ok = c
        .request_text(get(&[("authorization", "Bearer s3cret")]))
        .await
        .expect("the right token is accepted");
    assert!(ok.contains("\"kind\":\"ConfigMapList\""), "{ok}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// 8. Service addresses
// ---------------------------------------------------------------------------------------------

fn service(name: &str, node_port: bool) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": if node_port { "NodePort" } else { "ClusterIP" },
            "selector": {"app": name},
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }))
    .unwrap()
}

/// Cluster IPs and node ports allocated by two replicas at once are all different (each is
/// reserved in the store with its service), one asked for while taken is refused with kube's
/// 422, deleting a service frees its address, and an update that leaves them out keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_addresses_are_unique_across_replicas() {
    // A /27: 29 addresses to hand out, so 24 services allocated at random by two replicas
    // would almost surely collide without the reservations.
    let small = |c: &mut mainstay_apiserver::Config| {
        c.service_cluster_ip_range = ([10, 0, 0, 0].into(), 27);
    };
    let env = Env::start_with(small).await;
    let b = Server::start_with(&env.cluster, small).await;
    let on_a: Api<Service> = Api::default_namespaced(env.client.clone());
    let on_b: Api<Service> = Api::default_namespaced(b.client());

    let creates = (0..24).map(|i| {
        let api = if i % 2 == 0 {
            on_a.clone()
        } else {
            on_b.clone()
        };
        async move {
            api.create(&PostParams::default(), &service(&format!("s{i}"), true))
                .await
                .unwrap_or_else(|e| panic!("create s{i}: {e:?}"))
        }
    });
    let made = within("24 concurrent creates", futures::future::join_all(creates)).await;
    let ips: BTreeSet<String> = made
        .iter()
        .map(|s| s.spec.as_ref().unwrap().cluster_ip.clone().unwrap())
        .collect();
    assert_eq!(ips.len(), 24, "cluster IPs handed out twice: {made:#?}");
    assert!(
        ips.iter()
            .all(|ip| ip.starts_with("10.0.0.") && ip != "10.0.0.1"),
        "{ips:?}"
    );
    let ports: BTreeSet<i32> = made
        .iter()
        .map(|s| {
            s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
                .node_port
                .unwrap()
        })
        .collect();
    assert_eq!(ports.len(), 24, "node ports handed out twice");
    assert!(
        ports.iter().all(|p| (30000..=32767).contains(p)),
        "{ports:?}"
    );

    // Asking for a taken address, through the other replica.
    let s0 = &made[0];
    let ip0 = s0.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    let mut copy = service("copy", false);
    copy.spec.as_mut().unwrap().cluster_ip = Some(ip0.clone());
    let e = api_error(on_b.create(&PostParams::default(), &copy).await);
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");
    assert_eq!(
        e.message,
        format!("Service \"copy\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{ip0}\"}}: failed to allocate IP {ip0}: provided IP is already allocated")
    );
    let port0 = s0.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
        .node_port
        .unwrap();
    let mut copy = service("copy", true);
    copy.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(port0);
    let e = api_error(on_a.create(&PostParams::default(), &copy).await);
    assert_eq!(
        e.message,
        format!("Service \"copy\" is invalid: spec.ports[0].nodePort: Invalid value: {port0}: provided port is already allocated")
    );
    let mut outside = service("outside", false);
    outside.spec.as_mut().unwrap().cluster_ip = Some("10.1.0.5".into());
    let e = api_error(on_a.create(&PostParams::default(), &outside).await);
    assert_eq!(
        e.message,
        "Service \"outside\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.1.0.5\"}: failed to allocate IP 10.1.0.5: provided IP is not in the valid range. The range of valid IPs is 10.0.0.0/27"
    );

    // A replace that leaves the addresses out keeps them.
    let mut replaced = service("s0", true);
    replaced.metadata.resource_version = s0.metadata.resource_version.clone();
    let kept = on_b
        .replace("s0", &PostParams::default(), &replaced)
        .await
        .unwrap();
    let spec = kept.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some(ip0.as_str()));
    assert_eq!(spec.ports.unwrap()[0].node_port, Some(port0));

    // Deleting s0 frees both: a new service may ask for them.
    on_a.delete("s0", &DeleteParams::default()).await.unwrap();
    let mut again = service("again", true);
    again.spec.as_mut().unwrap().cluster_ip = Some(ip0.clone());
    again.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(port0);
    let got = on_b.create(&PostParams::default(), &again).await.unwrap();
    assert_eq!(got.spec.unwrap().cluster_ip, Some(ip0));

    // The last five free addresses, taken at once through both replicas: each create finds one
    // (a CI run once refused one after eight tries that only learned one taken address each,
    // while its replica's cache lagged), and only then is the range full.
    let fill = (24..29).map(|i| {
        let api = if i % 2 == 0 {
            on_a.clone()
        } else {
            on_b.clone()
        };
        async move {
            api.create(&PostParams::default(), &service(&format!("s{i}"), false))
                .await
                .unwrap_or_else(|e| panic!("create s{i} in a nearly full range: {e:?}"))
        }
    });
    within(
        "5 creates filling the range",
        futures::future::join_all(fill),
    )
    .await;
    let all: BTreeSet<String> = on_a
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|s| s.spec.as_ref()?.cluster_ip.clone())
        .filter(|ip| ip != "10.0.0.1")
        .collect();
    assert_eq!(all.len(), 29, "{all:?}");
    let e = api_error(
        on_b.create(&PostParams::default(), &service("one-too-many", false))
            .await,
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            500,
            "Internal error occurred: failed to allocate a serviceIP: range is full"
        ),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The workload kinds: Jobs, CronJobs, ServiceAccounts, EndpointSlices, DaemonSets, StatefulSets,
// ControllerRevisions, ReplicationControllers
// ---------------------------------------------------------------------------------------------

fn job(name: &str) -> k8s_openapi::api::batch::v1::Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "pi", "image": "perl:5.34"}],
        }}},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_generate_their_selector_and_keep_their_template() {
    use k8s_openapi::api::batch::v1::Job;
    let env = Env::start().await;
    let jobs: Api<Job> = Api::default_namespaced(env.client.clone());
    let pp = PostParams::default();

    let j = jobs.create(&pp, &job("pi")).await.unwrap();
    let uid = j.metadata.uid.clone().unwrap();
    let spec = j.spec.clone().unwrap();
    let want = BTreeMap::from([
        (
            "batch.kubernetes.io/controller-uid".to_string(),
            uid.clone(),
        ),
        ("batch.kubernetes.io/job-name".to_string(), "pi".to_string()),
        ("controller-uid".to_string(), uid.clone()),
        ("job-name".to_string(), "pi".to_string()),
    ]);
    assert_eq!(
        spec.selector.as_ref().unwrap().match_labels,
        Some(BTreeMap::from([(
            "batch.kubernetes.io/controller-uid".to_string(),
            uid.clone()
        )]))
    );
    assert_eq!(
        spec.template.metadata.as_ref().unwrap().labels,
        Some(want.clone())
    );
    assert_eq!(j.metadata.labels, Some(want));
    assert_eq!(
        (
            spec.completions,
            spec.parallelism,
            spec.backoff_limit,
            spec.completion_mode.as_deref(),
            spec.suspend,
            spec.manual_selector
        ),
        (
            Some(1),
            Some(1),
            Some(6),
            Some("NonIndexed"),
            Some(false),
            Some(false)
        )
    );
    assert_eq!(j.metadata.generation, Some(1));

    // The status subresource writes only the status.
    let st = jobs
        .patch_status(
            "pi",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"parallelism": 5}, "status": {"active": 1,
                "startTime": "2024-01-01T00:00:00Z"}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.as_ref().unwrap().active, Some(1));
    assert_eq!(st.spec.as_ref().unwrap().parallelism, Some(1));

    // Parallelism and suspend may change (a new generation); the template may not.
    let j = jobs
        .patch(
            "pi",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"parallelism": 2, "suspend": true}})),
        )
        .await
        .unwrap();
    assert_eq!(j.spec.as_ref().unwrap().parallelism, Some(2));
    assert_eq!(j.metadata.generation, Some(2));
    let e = api_error(
        jobs.patch(
            "pi",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "pi", "image": "perl:5.36"}]}}}})),
        )
        .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");
    assert!(
        e.message.contains("spec.template: Invalid value"),
        "{}",
        e.message
    );
    assert!(e.message.contains("field is immutable"), "{}", e.message);

    // A manual selector must be given, and a job's pods must restart OnFailure or Never.
    let mut manual = job("manual");
    manual.spec.as_mut().unwrap().manual_selector = Some(true);
    let e = api_error(jobs.create(&pp, &manual).await);
    assert_eq!(e.code, 422, "{e:?}");
    assert!(
        e.message.contains("spec.selector: Required value"),
        "{}",
        e.message
    );
    let mut always = job("always");
    always
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .restart_policy = Some("Always".into());
    let e = api_error(jobs.create(&pp, &always).await);
    assert!(
        e.message.contains(
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        ),
        "{}",
        e.message
    );

    // status.successful is a field selector of jobs.
    let listed = jobs
        .list(&ListParams::default().fields("status.successful=0"))
        .await
        .unwrap();
    assert_eq!(names(&listed.items), vec!["pi"]);

    // batch/v1 Jobs orphan their pods by default (kube keeps it for compatibility): with no
    // garbage collector running here, the Job stays, deleting, with the `orphan` finalizer;
    // deleting it again in the background drops the finalizer and the Job.
    jobs.delete("pi", &DeleteParams::default()).await.unwrap();
    let held = jobs.get("pi").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.metadata.finalizers, Some(vec!["orphan".to_string()]));
    jobs.delete("pi", &DeleteParams::background())
        .await
        .unwrap();
    eventually("job deleted", || async {
        jobs.get_opt("pi").await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjobs_service_accounts_and_endpoint_slices() {
    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let env = Env::start().await;
    let pp = PostParams::default();

    let cjs: Api<CronJob> = Api::default_namespaced(env.client.clone());
    let cronjob = |schedule: &str| -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "hello"},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}},
        }))
        .unwrap()
    };
    let e = api_error(cjs.create(&pp, &cronjob("61 * * * *")).await);
    assert_eq!(e.code, 422, "{e:?}");
    assert!(
        e.message
            .contains("spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"),
        "{}",
        e.message
    );
    let cj = cjs.create(&pp, &cronjob("*/5 * * * *")).await.unwrap();
    let spec = cj.spec.unwrap();
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Allow"));
    assert_eq!(spec.suspend, Some(false));
    assert_eq!(spec.successful_jobs_history_limit, Some(3));
    assert_eq!(spec.failed_jobs_history_limit, Some(1));
    let st = cjs
        .patch_status(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastScheduleTime": "2024-01-01T00:05:00Z"}})),
        )
        .await
        .unwrap();
    assert!(st.status.unwrap().last_schedule_time.is_some());
    let cj = cjs
        .patch(
            "hello",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({"apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "hello"}, "spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    assert_eq!(cj.spec.as_ref().unwrap().suspend, Some(true));
    assert_eq!(cj.spec.unwrap().schedule, "*/5 * * * *");

    let sas: Api<ServiceAccount> = Api::default_namespaced(env.client.clone());
    let sa: ServiceAccount = serde_json::from_value(
        json!({"metadata": {"name": "robot"}, "automountServiceAccountToken": false}),
    )
    .unwrap();
    sas.create(&pp, &sa).await.unwrap();
    let got = sas.get("robot").await.unwrap();
    assert_eq!(got.automount_service_account_token, Some(false));
    let patched = sas
        .patch(
            "robot",
            &PatchParams::default(),
            &Patch::Strategic(json!({"imagePullSecrets": [{"name": "regcred"}]})),
        )
        .await
        .unwrap();
    assert_eq!(patched.image_pull_secrets.unwrap()[0].name, "regcred");
    sas.delete("robot", &DeleteParams::default()).await.unwrap();
    assert!(sas.get_opt("robot").await.unwrap().is_none());

    let slices: Api<EndpointSlice> = Api::default_namespaced(env.client.clone());
    let slice = |address_type: &str, address: &str| -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": address_type,
            "endpoints": [{"addresses": [address], "conditions": {"ready": true}}],
            "ports": [{"port": 80}],
        }))
        .unwrap()
    };
    let e = api_error(slices.create(&pp, &slice("IPv4", "not-an-ip")).await);
    assert_eq!(e.code, 422, "{e:?}");
    assert!(
        e.message.contains(
            "endpoints[0].addresses[0]: Invalid value: \"not-an-ip\": must be a valid IPv4 address"
        ),
        "{}",
        e.message
    );
    let s = slices
        .create(&pp, &slice("IPv4", "10.0.0.1"))
        .await
        .unwrap();
    let port = &s.ports.unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.protocol.as_deref()),
        (Some(""), Some("TCP"))
    );
    let listed = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap();
    assert_eq!(names(&listed.items), vec!["web-1"]);
    let e = api_error(
        slices
            .patch(
                "web-1",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"addressType": "IPv6", "endpoints": [{"addresses": ["::1"]}]}),
                ),
            )
            .await,
    );
    assert!(
        e.message
            .contains("addressType: Invalid value: \"IPv6\": field is immutable"),
        "{}",
        e.message
    );
    slices
        .delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonsets_statefulsets_revisions_and_replication_controllers() {
    use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
    use k8s_openapi::api::core::v1::ReplicationController;
    let env = Env::start().await;
    let pp = PostParams::default();
    let template = |app: &str| {
        json!({"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}})
    };

    let dss: Api<DaemonSet> = Api::default_namespaced(env.client.clone());
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent")},
    }))
    .unwrap();
    let ds = dss.create(&pp, &ds).await.unwrap();
    let strategy = ds.spec.as_ref().unwrap().update_strategy.clone().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let ru = strategy.rolling_update.unwrap();
    assert_eq!(
        (ru.max_unavailable, ru.max_surge),
        (
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1)),
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
        )
    );
    assert_eq!(
        ds.annotations()["deprecated.daemonset.template.generation"],
        "1"
    );
    let st = dss
        .patch_status(
            "agent",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"desiredNumberScheduled": 3, "numberReady": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().desired_number_scheduled, 3);
    let ds = dss
        .patch(
            "agent",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "nginx:1.26"}]}}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        ds.annotations()["deprecated.daemonset.template.generation"],
        "2"
    );
    assert_eq!(ds.metadata.generation, Some(2));
    let e = api_error(
        dss.patch(
            "agent",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"selector": {"matchLabels": {"app": "other"}},
                "template": {"metadata": {"labels": {"app": "other"}}}}}),
            ),
        )
        .await,
    );
    assert!(
        e.message.contains("spec.selector: Invalid value"),
        "{}",
        e.message
    );
    // A replace that leaves the template's defaults out keeps the template generation.
    let mut bare = dss.get("agent").await.unwrap();
    let c = &mut bare
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0];
    c.image_pull_policy = None;
    c.termination_message_path = None;
    let same = dss.replace("agent", &pp, &bare).await.unwrap();
    assert_eq!(
        same.annotations()["deprecated.daemonset.template.generation"],
        "2"
    );

    let stss: Api<StatefulSet> = Api::default_namespaced(env.client.clone());
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": template("db")},
    }))
    .unwrap();
    let sts = stss.create(&pp, &sts).await.unwrap();
    let spec = sts.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
    assert_eq!(
        spec.update_strategy
            .unwrap()
            .rolling_update
            .unwrap()
            .partition,
        Some(0)
    );
    let retention = spec.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(
        (
            retention.when_deleted.as_deref(),
            retention.when_scaled.as_deref()
        ),
        (Some("Retain"), Some("Retain"))
    );
    assert_eq!(spec.revision_history_limit, Some(10));
    let scale = stss.get_scale("db").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=db"));
    let scale = stss
        .patch_scale(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(
        stss.get("db").await.unwrap().spec.unwrap().replicas,
        Some(3)
    );
    let st = stss
        .patch_status(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 3, "readyReplicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().ready_replicas, Some(1));
    let e = api_error(
        stss.patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"serviceName": "other"}})),
        )
        .await,
    );
    assert_eq!(e.code, 422, "{e:?}");
    assert!(
        e.message
            .contains("spec: Forbidden: updates to statefulset spec for fields other than"),
        "{}",
        e.message
    );

    let crs: Api<ControllerRevision> = Api::default_namespaced(env.client.clone());
    let cr: ControllerRevision = serde_json::from_value(json!({
        "metadata": {"name": "db-1"}, "revision": 1, "data": {"spec": {"template": template("db")}},
    }))
    .unwrap();
    crs.create(&pp, &cr).await.unwrap();
    let e = api_error(
        crs.patch(
            "db-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"spec": null}})),
        )
        .await,
    );
    assert!(e.message.contains("data: Invalid value"), "{}", e.message);
    let bumped = crs
        .patch(
            "db-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"revision": 2})),
        )
        .await
        .unwrap();
    assert_eq!(bumped.revision, 2);

    let rcs: Api<ReplicationController> = Api::default_namespaced(env.client.clone());
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "legacy"}, "spec": {"template": template("legacy")},
    }))
    .unwrap();
    let rc = rcs.create(&pp, &rc).await.unwrap();
    let spec = rc.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.selector,
        Some(BTreeMap::from([("app".to_string(), "legacy".to_string())]))
    );
    assert_eq!(rc.labels()["app"], "legacy");
    let scale = rcs
        .patch_scale(
            "legacy",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(4));
    assert_eq!(
        scale.status.unwrap().selector.as_deref(),
        Some("app=legacy")
    );
    assert_eq!(
        rcs.get("legacy").await.unwrap().spec.unwrap().replicas,
        Some(4)
    );
    let st = rcs
        .patch_status(
            "legacy",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"replicas": 9}, "status": {"replicas": 4, "readyReplicas": 2}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(st.spec.unwrap().replicas, Some(4));
    assert_eq!(st.status.unwrap().ready_replicas, Some(2));
    let listed = rcs
        .list(&ListParams::default().fields("status.replicas=4"))
        .await
        .unwrap();
    assert_eq!(names(&listed.items), vec!["legacy"]);

    for name in ["agent"] {
        dss.delete(name, &DeleteParams::default()).await.unwrap();
    }
    stss.delete("db", &DeleteParams::default()).await.unwrap();
    crs.delete("db-1", &DeleteParams::default()).await.unwrap();
    // v1 ReplicationControllers orphan their pods by default, as Jobs do (see above).
    rcs.delete("legacy", &DeleteParams::default())
        .await
        .unwrap();
    let held = rcs.get("legacy").await.unwrap();
    assert_eq!(held.metadata.finalizers, Some(vec!["orphan".to_string()]));
    rcs.delete("legacy", &DeleteParams::background())
        .await
        .unwrap();
    assert!(rcs.get_opt("legacy").await.unwrap().is_none());
}
