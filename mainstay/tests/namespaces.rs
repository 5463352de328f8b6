//! Namespace deletion and delete propagation end to end, every part a process of this binary: a
//! store member, an apiserver (plain HTTP on loopback) and, where the test needs it, a
//! controller-manager. kube-rs clients act as users do.
//!
//! - A namespace holding objects of every kind the apiserver serves is marked Terminating,
//!   refuses new content with kube's 403, is emptied by the namespace controller, reports the
//!   content a finalizer holds back in kube's conditions, and goes once that finalizer is removed;
//!   afterwards no namespaced resource discovery lists holds anything in it.
//! - The `finalize` subresource changes only `spec.finalizers`, and the namespace goes when a
//!   Terminating namespace's finalizers are all removed (no controller runs there).
//! - propagationPolicy Foreground / Orphan leave the object with `foregroundDeletion` /
//!   `orphan` (the apiserver's side; the garbage collector that removes them is not run here),
//!   both options at once are kube's 422, the system namespaces may not be deleted, and pods get
//!   the DefaultTolerationSeconds tolerations.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Pod, Secret, Service};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

use common::plane::{Plane, SHORT_ELECTION};

/// The tests share two cores: one cluster at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bound for anything that should happen in seconds (the controller waits kube's 5 s before
/// its first pass, and 8 s between passes while a finalizer holds content back).
const DEADLINE: Duration = Duration::from_secs(90);

/// A store member, an apiserver (pods tolerate unreachable nodes 120 s unless they say
/// otherwise) and, with `controllers`, a controller-manager running those.
async fn cluster(controllers: Option<&str>) -> Plane {
    let mut plane = Plane::start(&["--default-unreachable-toleration-seconds", "120"]).await;
    if let Some(list) = controllers {
        let mut args = vec!["--controllers", list];
        args.extend(SHORT_ELECTION);
        plane.component("controller-manager", &args);
    }
    plane
}

fn obj<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

async fn create<K>(c: &kube::Client, ns: &str, v: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &obj(v))
        .await
        .expect("creating an object")
}

async fn create_namespace(c: &kube::Client, name: &str, spec: Value) -> Namespace {
    Api::<Namespace>::all(c.clone())
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": name}, "spec": spec})),
        )
        .await
        .expect("creating the namespace")
}

fn api_error(e: kube::Error) -> kube::core::ErrorResponse {
    match e {
        kube::Error::Api(r) => r,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn pod_spec() -> Value {
    json!({"containers": [{"name": "c", "image": "nginx"}]})
}

/// Every namespaced resource discovery lists (with `list`), at its preferred version.
async fn namespaced_resources(c: &kube::Client) -> Vec<ApiResource> {
    let mut out = Vec::new();
    let discovery = kube::Discovery::new(c.clone())
        .run()
        .await
        .expect("discovery");
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope == kube::discovery::Scope::Namespaced && caps.supports_operation("list") {
                out.push(ar);
            }
        }
    }
    out
}

fn condition(ns: &Namespace, kind: &str) -> Option<(String, String, String)> {
    let c = ns
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

#[tokio::test]
async fn a_namespace_is_emptied_by_the_controller_and_removed() {
    let _serial = SERIAL.lock().await;
    let cluster = cluster(Some("*")).await;
    let c = &cluster.client;
    let ns = "doomed";
    create_namespace(c, ns, json!({})).await;

    // One object of every kind the apiserver serves.
    create::<Pod>(
        c,
        ns,
        json!({"metadata": {"name": "p"}, "spec": pod_spec()}),
    )
    .await;
    create::<Service>(
        c,
        ns,
        json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    create::<Endpoints>(c, ns, json!({"metadata": {"name": "manual"}})).await;
    create::<Secret>(
        c,
        ns,
        json!({"metadata": {"name": "sec"}, "stringData": {"k": "v"}}),
    )
    .await;
    create::<Event>(
        c,
        ns,
        json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns},
               "reason": "Test", "message": "m", "type": "Normal"}),
    )
    .await;
    create::<Lease>(
        c,
        ns,
        json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "x"}}),
    )
    .await;
    let template = json!({"metadata": {"labels": {"app": "w"}}, "spec": pod_spec()});
    create::<Deployment>(
        c,
        ns,
        json!({"metadata": {"name": "d"}, "spec": {"replicas": 2,
               "selector": {"matchLabels": {"app": "w"}}, "template": template}}),
    )
    .await;
    create::<ReplicaSet>(
        c,
        ns,
        json!({"metadata": {"name": "rs"}, "spec": {"replicas": 1,
               "selector": {"matchLabels": {"app": "r"}},
               "template": {"metadata": {"labels": {"app": "r"}}, "spec": pod_spec()}}}),
    )
    .await;
    // A ConfigMap a finalizer holds back.
    create::<ConfigMap>(
        c,
        ns,
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {"a": "1"}}),
    )
    .await;
    // The controllers run: the Deployment's pods exist before the deletion.
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    common::eventually("the Deployment's pods", DEADLINE, || {
        let pods = pods.clone();
        async move {
            let n = pods
                .list(&ListParams::default().labels("app=w"))
                .await
                .ok()?
                .items
                .len();
            (n == 2).then_some(())
        }
    })
    .await;

    let nss: Api<Namespace> = Api::all(c.clone());
    nss.delete(ns, &DeleteParams::default())
        .await
        .expect("deleting the namespace");
    let t = nss.get(ns).await.expect("still there");
    assert_eq!(
        t.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Terminating")
    );
    assert!(t.metadata.deletion_timestamp.is_some());

    // New content is refused as kube refuses it.
    let e = api_error(
        pods.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "late"}, "spec": pod_spec()})),
        )
        .await
        .expect_err("a create in a Terminating namespace"),
    );
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "pods \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );

    // Everything but the held ConfigMap goes; the conditions say what remains and why.
    let held = common::eventually("the conditions name the held ConfigMap", DEADLINE, || {
        let nss = nss.clone();
        async move {
            let ns = nss.get("doomed").await.ok()?;
            let fin = condition(&ns, "NamespaceFinalizersRemaining")?;
            (fin.0 == "True").then_some(ns)
        }
    })
    .await;
    assert_eq!(
        condition(&held, "NamespaceFinalizersRemaining").unwrap(),
        (
            "True".into(),
            "SomeFinalizersRemain".into(),
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances".into()
        )
    );
    assert_eq!(
        condition(&held, "NamespaceContentRemaining").unwrap(),
        (
            "True".into(),
            "SomeResourcesRemain".into(),
            "Some resources are remaining: configmaps. has 1 resource instances".into()
        )
    );
    assert_eq!(
        condition(&held, "NamespaceDeletionDiscoveryFailure").unwrap(),
        (
            "False".into(),
            "ResourcesDiscovered".into(),
            "All resources successfully discovered".into()
        )
    );
    assert_eq!(
        held.spec.as_ref().and_then(|s| s.finalizers.clone()),
        Some(vec!["kubernetes".to_string()]),
        "not finalized while content remains"
    );
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
    let cm = cms.get("held").await.expect("held back by its finalizer");
    assert!(cm.metadata.deletion_timestamp.is_some());

    // The finalizer's owner lets go: the ConfigMap goes, then the namespace.
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("removing the finalizer");
    common::eventually("the namespace is gone", DEADLINE, || {
        let nss = nss.clone();
        async move {
            match nss.get("doomed").await {
                Err(kube::Error::Api(r)) if r.code == 404 => Some(()),
                _ => None,
            }
        }
    })
    .await;

    // Nothing of any kind discovery lists is left in it.
    for ar in namespaced_resources(c).await {
        let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), ns, &ar);
        let left = api.list(&ListParams::default()).await.expect("listing");
        assert!(
            left.items.is_empty(),
            "{} left in the deleted namespace: {:?}",
            ar.plural,
            left.items
                .iter()
                .map(|o| o.metadata.name.clone())
                .collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn the_finalize_subresource_changes_only_spec_finalizers() {
    let _serial = SERIAL.lock().await;
    // No controller-manager: only the finalize calls below finalize.
    let cluster = cluster(None).await;
    let c = &cluster.client;
    let nss: Api<Namespace> = Api::all(c.clone());
    let created = create_namespace(c, "fin", json!({"finalizers": ["example.com/x"]})).await;
    assert_eq!(
        created.spec.as_ref().and_then(|s| s.finalizers.clone()),
        Some(vec!["example.com/x".to_string(), "kubernetes".to_string()])
    );
    assert_eq!(
        created.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Active")
    );

    // A plain update cannot change spec.finalizers.
    let mut edited = created.clone();
    edited.spec.as_mut().unwrap().finalizers = Some(vec![]);
    edited
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("a".into(), "1".into());
    let updated = nss
        .replace("fin", &PostParams::default(), &edited)
        .await
        .expect("update");
    assert_eq!(
        updated.spec.as_ref().and_then(|s| s.finalizers.clone()),
        Some(vec!["example.com/x".to_string(), "kubernetes".to_string()])
    );
    assert_eq!(updated.metadata.labels.as_ref().unwrap()["a"], "1");

    // finalize changes spec.finalizers and nothing else.
    let mut body = updated.clone();
    body.spec.as_mut().unwrap().finalizers = Some(vec!["example.com/x".into()]);
    body.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("a".into(), "2".into());
    let finalized = nss
        .replace_subresource(
            "finalize",
            "fin",
            &PostParams::default(),
            serde_json::to_vec(&body).unwrap(),
        )
        .await
        .expect("finalize");
    assert_eq!(
        finalized.spec.as_ref().and_then(|s| s.finalizers.clone()),
        Some(vec!["example.com/x".to_string()])
    );
    assert_eq!(finalized.metadata.labels.as_ref().unwrap()["a"], "1");

    // Deleted: Terminating, and it stays while spec.finalizers is not empty.
    nss.delete("fin", &DeleteParams::default())
        .await
        .expect("delete");
    let t = nss.get("fin").await.expect("still there");
    assert_eq!(
        t.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Terminating")
    );
    nss.delete("fin", &DeleteParams::default())
        .await
        .expect("deleting again changes nothing");
    let t = nss.get("fin").await.expect("still there");

    // The last finalizer goes (Go clients omit the empty list): so does the namespace.
    let mut body = serde_json::to_value(&t).unwrap();
    body["spec"] = json!({});
    nss.replace_subresource(
        "finalize",
        "fin",
        &PostParams::default(),
        serde_json::to_vec(&body).unwrap(),
    )
    .await
    .expect("finalize");
    let e = api_error(nss.get("fin").await.expect_err("gone"));
    assert_eq!(e.code, 404);
}

#[tokio::test]
async fn delete_propagation_and_admission_as_kube() {
    let _serial = SERIAL.lock().await;
    let cluster = cluster(None).await;
    let c = &cluster.client;
    let ns = "default";

    // Foreground: the Deployment stays, being deleted, with foregroundDeletion.
    let template = json!({"metadata": {"labels": {"app": "f"}}, "spec": pod_spec()});
    create::<Deployment>(
        c,
        ns,
        json!({"metadata": {"name": "fg"}, "spec": {"replicas": 0,
               "selector": {"matchLabels": {"app": "f"}}, "template": template}}),
    )
    .await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), ns);
    let foreground = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    deploys.delete("fg", &foreground).await.expect("delete");
    let d = deploys.get("fg").await.expect("stays");
    assert_eq!(
        d.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert!(d.metadata.deletion_timestamp.is_some());
    assert_eq!(d.metadata.deletion_grace_period_seconds, Some(0));
    // Deleted again with Orphan: the finalizer switches.
    deploys
        .delete("fg", &DeleteParams::orphan())
        .await
        .expect("delete");
    let d = deploys.get("fg").await.expect("stays");
    assert_eq!(d.metadata.finalizers, Some(vec!["orphan".to_string()]));
    // ... and with Background it has none left: gone.
    deploys
        .delete("fg", &DeleteParams::background())
        .await
        .expect("delete");
    assert_eq!(api_error(deploys.get("fg").await.unwrap_err()).code, 404);

    // Orphan on a ConfigMap; removing the finalizer by an update removes the object.
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
    create::<ConfigMap>(c, ns, json!({"metadata": {"name": "o"}})).await;
    cms.delete("o", &DeleteParams::orphan())
        .await
        .expect("delete");
    let cm = cms.get("o").await.expect("stays");
    assert_eq!(cm.metadata.finalizers, Some(vec!["orphan".to_string()]));
    cms.patch(
        "o",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("removing the finalizer");
    assert_eq!(api_error(cms.get("o").await.unwrap_err()).code, 404);

    // Both options at once: kube's 422.
    create::<ConfigMap>(c, ns, json!({"metadata": {"name": "both"}})).await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("", "v1", "ConfigMap"),
        "configmaps",
    );
    let dynamic: Api<DynamicObject> = Api::namespaced_with(c.clone(), ns, &ar);
    let both = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    let req = http_delete_with_body(
        "/api/v1/namespaces/default/configmaps/both",
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "orphanDependents": true, "propagationPolicy": "Foreground"}),
    );
    let e = c.request::<Value>(req).await;
    let e = api_error(e.expect_err("both options"));
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Foreground": orphanDependents and deletionPropagation cannot be both set"#
    );
    dynamic
        .delete("both", &both)
        .await
        .expect("one option is fine");

    // The system namespaces may not be deleted.
    let e = api_error(
        Api::<Namespace>::all(c.clone())
            .delete("kube-system", &DeleteParams::default())
            .await
            .expect_err("kube-system"),
    );
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        r#"namespaces "kube-system" is forbidden: this namespace may not be deleted"#
    );

    // DefaultTolerationSeconds (the unreachable one from this apiserver's flag).
    let pod = create::<Pod>(
        c,
        ns,
        json!({"metadata": {"name": "t"}, "spec": {"containers": [{"name": "c", "image": "nginx"}],
               "tolerations": [{"key": "other", "operator": "Exists"}]}}),
    )
    .await;
    let tolerations = serde_json::to_value(pod.spec.unwrap().tolerations.unwrap()).unwrap();
    assert_eq!(
        tolerations,
        json!([
            {"key": "other", "operator": "Exists"},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 120},
        ])
    );
}

/// A DELETE with a JSON body (kube-rs's DeleteParams cannot carry both options at once).
fn http_delete_with_body(path: &str, body: Value) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method("DELETE")
        .uri(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .expect("a request")
}
