//! The apiserver's side of deletion, through kube-rs against an in-process apiserver on a testkit
//! cluster (Mainstay, or etcd with `MAINSTAY_TEST_TARGET=etcd`), with no controller running:
//! namespaces marked Terminating and refusing new content, the `finalize` subresource and the
//! namespace's removal once its finalizers are gone, propagationPolicy's finalizers, kube's 422
//! for both options, the system namespaces' 403, and DefaultTolerationSeconds.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::{json, Value};

use support::Env;

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

fn api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::ErrorResponse {
    match r {
        Err(kube::Error::Api(e)) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn pod(name: &str) -> Pod {
    obj(json!({"metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx"}],
                 "tolerations": [{"key": "other", "operator": "Exists"}]}}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_terminate_refuse_content_and_go_once_finalized() {
    let env = Env::start().await;
    let c = &env.client;
    let nss: Api<Namespace> = Api::all(c.clone());
    let pp = PostParams::default();
    let created = nss
        .create(
            &pp,
            &obj(
                json!({"metadata": {"name": "fin"}, "spec": {"finalizers": ["example.com/x"]},
                "status": {"phase": "Terminating"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        created.spec.as_ref().unwrap().finalizers,
        Some(vec!["example.com/x".to_string(), "kubernetes".to_string()])
    );
    assert_eq!(
        created.status.as_ref().unwrap().phase.as_deref(),
        Some("Active")
    );

    // A plain update cannot change spec.finalizers.
    let mut edited = created.clone();
    edited.spec.as_mut().unwrap().finalizers = Some(vec![]);
    let updated = nss.replace("fin", &pp, &edited).await.unwrap();
    assert_eq!(
        updated.spec.as_ref().unwrap().finalizers,
        created.spec.as_ref().unwrap().finalizers
    );

    // finalize changes spec.finalizers only.
    let mut body = serde_json::to_value(&updated).unwrap();
    body["spec"]["finalizers"] = json!(["example.com/x"]);
    body["metadata"]["labels"]["a"] = json!("b");
    let finalized = nss
        .replace_subresource("finalize", "fin", &pp, serde_json::to_vec(&body).unwrap())
        .await
        .unwrap();
    assert_eq!(
        finalized.spec.as_ref().unwrap().finalizers,
        Some(vec!["example.com/x".to_string()])
    );
    assert!(finalized
        .metadata
        .labels
        .as_ref()
        .unwrap()
        .get("a")
        .is_none());
    // finalize takes only PUT.
    let e = api_error(
        nss.patch_subresource(
            "finalize",
            "fin",
            &PatchParams::default(),
            &Patch::Merge(json!({})),
        )
        .await,
    );
    assert_eq!(e.code, 405);

    // Content goes in while Active.
    let pods: Api<Pod> = Api::namespaced(c.clone(), "fin");
    pods.create(&pp, &pod("early")).await.unwrap();

    // DELETE marks it Terminating; it stays (no controller here) and refuses new content.
    nss.delete("fin", &DeleteParams::default()).await.unwrap();
    let t = nss.get("fin").await.unwrap();
    assert_eq!(
        t.status.as_ref().unwrap().phase.as_deref(),
        Some("Terminating")
    );
    assert!(t.metadata.deletion_timestamp.is_some());
    let e = api_error(pods.create(&pp, &pod("late")).await);
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        "pods \"late\" is forbidden: unable to create new content in namespace fin because it is being terminated"
    );
    let mut generated = pod("");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let e = api_error(pods.create(&pp, &generated).await);
    assert!(
        e.message.starts_with("pods \"gen-\" is forbidden"),
        "{}",
        e.message
    );
    assert!(
        pods.get("early").await.is_ok(),
        "content is the controller's to delete"
    );
    // Deleting again changes nothing while spec.finalizers holds.
    nss.delete("fin", &DeleteParams::default()).await.unwrap();
    let t = nss.get("fin").await.unwrap();

    // The last spec finalizer goes (as Go clients send it: no list at all): so does it.
    let mut body = serde_json::to_value(&t).unwrap();
    body["spec"] = json!({});
    nss.replace_subresource("finalize", "fin", &pp, serde_json::to_vec(&body).unwrap())
        .await
        .unwrap();
    assert_eq!(api_error(nss.get("fin").await).code, 404);

    // The system namespaces may not be deleted.
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let e = api_error(nss.delete(name, &DeleteParams::default()).await);
        assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            e.message,
            format!("namespaces {name:?} is forbidden: this namespace may not be deleted")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_policies_leave_their_finalizers() {
    let env = Env::start_with(|c| c.default_unreachable_toleration_seconds = 120).await;
    let c = &env.client;
    let pp = PostParams::default();

    let deploys: Api<Deployment> = Api::default_namespaced(c.clone());
    deploys
        .create(
            &pp,
            &obj(json!({"metadata": {"name": "fg"}, "spec": {"replicas": 0,
                "selector": {"matchLabels": {"app": "f"}},
                "template": {"metadata": {"labels": {"app": "f"}},
                             "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})),
        )
        .await
        .unwrap();
    let foreground = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    deploys.delete("fg", &foreground).await.unwrap();
    let d = deploys.get("fg").await.unwrap();
    assert_eq!(
        d.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert!(d.metadata.deletion_timestamp.is_some());
    assert_eq!(d.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(d.metadata.generation, Some(2));
    deploys.delete("fg", &DeleteParams::orphan()).await.unwrap();
    let d2 = deploys.get("fg").await.unwrap();
    assert_eq!(d2.metadata.finalizers, Some(vec!["orphan".to_string()]));
    assert_eq!(
        d2.metadata.deletion_timestamp,
        d.metadata.deletion_timestamp
    );
    deploys
        .delete("fg", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(api_error(deploys.get("fg").await).code, 404);

    // Orphan leaves a ConfigMap; an update taking the finalizer away removes it.
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    cms.create(&pp, &obj(json!({"metadata": {"name": "o"}})))
        .await
        .unwrap();
    cms.delete("o", &DeleteParams::orphan()).await.unwrap();
    let cm = cms.get("o").await.unwrap();
    assert_eq!(cm.metadata.finalizers, Some(vec!["orphan".to_string()]));
    cms.patch(
        "o",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(cms.get("o").await).code, 404);

    // Both options at once: kube's 422.
    cms.create(&pp, &obj(json!({"metadata": {"name": "both"}})))
        .await
        .unwrap();
    let req = http::Request::builder()
        .method("DELETE")
        .uri("/api/v1/namespaces/default/configmaps/both")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&json!({"kind": "DeleteOptions", "apiVersion": "v1",
                "orphanDependents": true, "propagationPolicy": "Foreground"}))
            .unwrap(),
        )
        .unwrap();
    let e = api_error(c.request::<Value>(req).await);
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        e.message,
        r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Foreground": orphanDependents and deletionPropagation cannot be both set"#
    );
    assert!(cms.get("both").await.is_ok());

    // DefaultTolerationSeconds: both tolerations appended, the unreachable one from the flag.
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    let created = pods.create(&pp, &pod("t")).await.unwrap();
    let tolerations = serde_json::to_value(created.spec.unwrap().tolerations.unwrap()).unwrap();
    assert_eq!(
        tolerations,
        json!([
            {"key": "other", "operator": "Exists"},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 120},
        ])
    );
}

/// `as=PartialObjectMetadata`: kube-rs' metadata get, list and watch (the garbage collector's
/// and namespace controller's way to read every kind) see metadata only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_get_list_and_watch() {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{ListParams, WatchEvent, WatchParams};
    let env = Env::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let pp = PostParams::default();
    cms.create(
        &pp,
        &obj(json!({"metadata": {"name": "m1", "labels": {"k": "v"}}, "data": {"big": "x"}})),
    )
    .await
    .unwrap();
    let one = cms.get_metadata("m1").await.unwrap();
    assert_eq!(one.metadata.name.as_deref(), Some("m1"));
    assert_eq!(one.types.as_ref().unwrap().kind, "PartialObjectMetadata");
    let raw: Value = env
        .client
        .request(
            http::Request::get("/api/v1/namespaces/default/configmaps/m1")
                .header(
                    "accept",
                    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                )
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(raw.get("data").is_none(), "no data in {raw}");
    let list = cms.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.labels.as_ref().unwrap()["k"], "v");
    let rv = list.metadata.resource_version.clone().unwrap();
    let mut stream = cms
        .watch_metadata(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(
        &pp,
        &obj(json!({"metadata": {"name": "m2"}, "data": {"a": "b"}})),
    )
    .await
    .unwrap();
    let ev = tokio::time::timeout(std::time::Duration::from_secs(10), stream.try_next())
        .await
        .expect("an event in time")
        .unwrap()
        .expect("the stream goes on");
    match ev {
        WatchEvent::Added(m) => assert_eq!(m.metadata.name.as_deref(), Some("m2")),
        other => panic!("expected ADDED, got {other:?}"),
    }
}
