//! The StatefulSet controller end to end: a store member, an apiserver, a scheduler, a
//! controller-manager and two simulated nodes, each a process of this binary, driven by kube-rs
//! and kubectl as a user would. One plane serves every scenario, run side by side, each in its
//! own namespace, with its pods' watch recorded from before the set exists:
//!
//! - OrderedReady: web-0, web-1, web-2 are created in that order, each only once the lower ones
//!   were seen Running and Ready (a readiness delay of 1 s makes the order visible), with their
//!   hostname, subdomain and labels, and kube's Events; a scale down to 1 deletes web-2, and
//!   web-1 only once web-2 is gone;
//! - RollingUpdate: a template change with partition 1 updates web-2 then web-1 and leaves
//!   web-0 (`kubectl rollout status` finishes: a partitioned rollout), partition 0 updates web-0,
//!   and the update revision becomes current; `kubectl rollout undo` brings the old template
//!   back and the pods return to the old revision's name;
//! - Parallel: the three pods are created before any of them is Ready.
//!
//! Needs the apiserver to serve StatefulSets (with their status subresource) and
//! ControllerRevisions, and kubectl 1.32 at /usr/bin/kubectl.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use common::eventually;
use common::plane::{Plane, DEADLINE};

const KUBECTL: &str = "/usr/bin/kubectl";

async fn create_namespace(c: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating a namespace");
}

fn statefulset(replicas: i32, image: &str, policy: &str, ready_after_secs: i32) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "serviceName": "nginx",
            "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "nginx",
                        "image": image,
                        "readinessProbe": {
                            "tcpSocket": {"port": 80},
                            "initialDelaySeconds": ready_after_secs
                        }
                    }]
                }
            }
        }
    }))
    .expect("statefulset")
}

fn is_ready(p: &Pod) -> bool {
    let status = p.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn revision_of(p: &Pod) -> String {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("controller-revision-hash").cloned())
        .unwrap_or_default()
}

/// One event of the recorded pod watch.
#[derive(Clone, Debug)]
enum Seen {
    Added(Pod),
    Modified(Pod),
    Deleted(Pod),
}

/// The pods' watch of a namespace, recorded in the order the server sent it.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    async fn start(c: &kube::Client, ns: &str) -> Recorder {
        let rec = Recorder::default();
        let api: Api<Pod> = Api::namespaced(c.clone(), ns);
        let list = api
            .list(&ListParams::default())
            .await
            .expect("listing pods");
        let from = list.metadata.resource_version.unwrap_or_default();
        for p in list.items {
            rec.0.lock().unwrap().push(Seen::Added(p));
        }
        let mut stream = api
            .watch(&WatchParams::default(), &from)
            .await
            .expect("watching pods")
            .boxed();
        let r = rec.clone();
        tokio::spawn(async move {
            while let Some(e) = stream.next().await {
                let seen = match e {
                    Ok(WatchEvent::Added(p)) => Seen::Added(p),
                    Ok(WatchEvent::Modified(p)) => Seen::Modified(p),
                    Ok(WatchEvent::Deleted(p)) => Seen::Deleted(p),
                    _ => continue,
                };
                r.0.lock().unwrap().push(seen);
            }
        });
        rec
    }

    fn events(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    /// The pod names in the order they were first seen being deleted (or gone).
    fn deletion_order(&self) -> Vec<String> {
        let mut order: Vec<String> = Vec::new();
        for e in self.events() {
            let deleting = match &e {
                Seen::Modified(p) => p.metadata.deletion_timestamp.is_some().then(|| name(p)),
                Seen::Deleted(p) => Some(name(p)),
                Seen::Added(_) => None,
            };
            if let Some(n) = deleting {
                if order.last() != Some(&n) && !order.contains(&n) {
                    order.push(n);
                }
            }
        }
        order
    }
}

/// The set, once `done` holds for it and its pods.
async fn wait_for(
    c: &kube::Client,
    ns: &str,
    what: &str,
    done: impl Fn(&StatefulSet, &[Pod]) -> bool,
) -> (StatefulSet, Vec<Pod>) {
    let sets: Api<StatefulSet> = Api::namespaced(c.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    eventually(&format!("{ns}: {what}"), DEADLINE, || {
        let (sets, pods) = (sets.clone(), pods.clone());
        let done = &done;
        async move {
            let set = sets.get("web").await.ok()?;
            let mut list = pods.list(&ListParams::default()).await.ok()?.items;
            list.sort_by_key(name);
            done(&set, &list).then_some((set, list))
        }
    })
    .await
}

fn status_of(s: &StatefulSet) -> k8s_openapi::api::apps::v1::StatefulSetStatus {
    s.status.clone().unwrap_or_default()
}

/// Every pod named, Ready, live, at `revision` (any, when empty), and the status settled.
fn settled(s: &StatefulSet, pods: &[Pod], names: &[&str], revision: &str) -> bool {
    let st = status_of(s);
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    st.observed_generation == s.metadata.generation
        && live.iter().map(|p| name(p)).collect::<Vec<_>>() == names
        && live.len() == pods.len()
        && live.iter().all(|p| is_ready(p))
        && live
            .iter()
            .all(|p| revision.is_empty() || revision_of(p) == revision)
        && st.ready_replicas.unwrap_or(0) == names.len() as i32
}

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("running kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn kubectl_async(kubeconfig: std::path::PathBuf, args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kubectl(&kubeconfig, &args)
    })
    .await
    .expect("kubectl task")
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// OrderedReady: creation in order after readiness, identity, Events, scale down from the top.
async fn ordered_ready(c: kube::Client) {
    let ns = "ordered";
    create_namespace(&c, ns).await;
    let rec = Recorder::start(&c, ns).await;
    let sets: Api<StatefulSet> = Api::namespaced(c.clone(), ns);
    sets.create(
        &PostParams::default(),
        &statefulset(3, "nginx:1", "OrderedReady", 1),
    )
    .await
    .expect("creating the set");
    let (set, pods) = wait_for(&c, ns, "3 pods ready", |s, p| {
        settled(s, p, &["web-0", "web-1", "web-2"], "")
    })
    .await;

    // Each pod was created only once every lower one had been seen Running and Ready.
    let mut ready_now: BTreeSet<String> = BTreeSet::new();
    let mut created: Vec<String> = Vec::new();
    for e in rec.events() {
        match e {
            Seen::Added(p) => {
                let n = name(&p);
                let ord: usize = n.trim_start_matches("web-").parse().expect("ordinal");
                for lower in 0..ord {
                    assert!(
                        ready_now.contains(&format!("web-{lower}")),
                        "{n} created before web-{lower} was ready"
                    );
                }
                created.push(n);
            }
            Seen::Modified(p) => {
                if is_ready(&p) {
                    ready_now.insert(name(&p));
                } else {
                    ready_now.remove(&name(&p));
                }
            }
            Seen::Deleted(p) => {
                ready_now.remove(&name(&p));
            }
        }
    }
    assert_eq!(created, ["web-0", "web-1", "web-2"]);

    // Identity and ownership.
    let st = status_of(&set);
    let revision = st.update_revision.clone().expect("updateRevision");
    assert_eq!(st.current_revision.as_deref(), Some(revision.as_str()));
    assert_eq!(
        (st.replicas, st.current_replicas, st.updated_replicas),
        (3, Some(3), Some(3))
    );
    for (i, p) in pods.iter().enumerate() {
        let n = format!("web-{i}");
        let spec = p.spec.as_ref().expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some(n.as_str()));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let l = p.metadata.labels.clone().unwrap_or_default();
        assert_eq!(l.get("app").map(String::as_str), Some("web"));
        assert_eq!(
            l.get("statefulset.kubernetes.io/pod-name"),
            Some(&n),
            "{n}'s labels: {l:?}"
        );
        assert_eq!(l.get("apps.kubernetes.io/pod-index"), Some(&i.to_string()));
        assert_eq!(l.get("controller-revision-hash"), Some(&revision));
        let owner = &p.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("StatefulSet", "web")
        );
        assert_eq!(owner.uid, set.metadata.uid.clone().unwrap_or_default());
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
    }
    let events: Api<Event> = Api::namespaced(c.clone(), ns);
    eventually("SuccessfulCreate events", DEADLINE, || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            let msgs: BTreeMap<String, String> = list
                .items
                .into_iter()
                .filter(|e| e.involved_object.kind.as_deref() == Some("StatefulSet"))
                .filter_map(|e| Some((e.message?, e.reason?)))
                .collect();
            (0..3)
                .all(|i| {
                    msgs.get(&format!("create Pod web-{i} in StatefulSet web successful"))
                        .map(String::as_str)
                        == Some("SuccessfulCreate")
                })
                .then_some(())
        }
    })
    .await;

    // Scale down to 1: web-2 goes first, web-1 only once web-2 is gone.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .expect("scaling down");
    wait_for(&c, ns, "scaled down to web-0", |s, p| {
        settled(s, p, &["web-0"], "") && status_of(s).replicas == 1
    })
    .await;
    assert_eq!(rec.deletion_order(), ["web-2", "web-1"]);
    let mut web2_gone = false;
    for e in rec.events() {
        match e {
            Seen::Deleted(p) if name(&p) == "web-2" => web2_gone = true,
            Seen::Modified(p) | Seen::Deleted(p)
                if name(&p) == "web-1" && p.metadata.deletion_timestamp.is_some() =>
            {
                assert!(web2_gone, "web-1 deleted while web-2 was still there");
            }
            _ => {}
        }
    }
}

/// RollingUpdate with a partition, `kubectl rollout status`, `kubectl rollout undo`.
async fn rolling_update(c: kube::Client, kubeconfig: std::path::PathBuf) {
    let ns = "rolling";
    create_namespace(&c, ns).await;
    let sets: Api<StatefulSet> = Api::namespaced(c.clone(), ns);
    sets.create(
        &PostParams::default(),
        &statefulset(3, "nginx:1", "OrderedReady", 1),
    )
    .await
    .expect("creating the set");
    let (set, _) = wait_for(&c, ns, "3 pods ready", |s, p| {
        settled(s, p, &["web-0", "web-1", "web-2"], "")
    })
    .await;
    let r1 = status_of(&set).current_revision.expect("currentRevision");
    let rec = Recorder::start(&c, ns).await;

    // A new template, partition 1: web-2 and web-1 are updated, web-0 stays.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
            "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}
        }})),
    )
    .await
    .expect("updating the template");
    let (set, pods) = wait_for(&c, ns, "web-1 and web-2 updated", |s, p| {
        let st = status_of(s);
        let r2 = st.update_revision.clone().unwrap_or_default();
        settled(s, p, &["web-0", "web-1", "web-2"], "")
            && r2 != r1
            && st.updated_replicas == Some(2)
            && revision_of(&p[0]) == r1
            && revision_of(&p[1]) == r2
            && revision_of(&p[2]) == r2
    })
    .await;
    let st = status_of(&set);
    let r2 = st.update_revision.clone().expect("updateRevision");
    assert_eq!(st.current_revision.as_deref(), Some(r1.as_str()));
    assert_eq!(st.current_replicas, Some(1));
    let image = |p: &Pod| {
        p.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    assert_eq!(
        pods.iter().map(image).collect::<Vec<_>>(),
        ["nginx:1", "nginx:2", "nginx:2"]
    );
    let (ok, out) = kubectl_async(
        kubeconfig.clone(),
        strings(&[
            "rollout",
            "status",
            "statefulset/web",
            "-n",
            ns,
            "--timeout=30s",
        ]),
    )
    .await;
    assert!(ok, "kubectl rollout status (partitioned): {out}");
    assert!(out.contains("partitioned roll out complete"), "{out}");

    // Partition 0: web-0 too, and the update revision becomes current.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await
    .expect("partition 0");
    let (set, _) = wait_for(&c, ns, "all updated", |s, p| {
        let st = status_of(s);
        settled(s, p, &["web-0", "web-1", "web-2"], &r2)
            && st.current_revision.as_deref() == Some(r2.as_str())
            && st.update_revision.as_deref() == Some(r2.as_str())
            && st.current_replicas == Some(3)
            && st.updated_replicas == Some(3)
    })
    .await;
    assert_eq!(status_of(&set).current_revision, Some(r2.clone()));
    assert_eq!(rec.deletion_order(), ["web-2", "web-1", "web-0"]);
    let (ok, out) = kubectl_async(
        kubeconfig.clone(),
        strings(&[
            "rollout",
            "status",
            "statefulset/web",
            "-n",
            ns,
            "--timeout=30s",
        ]),
    )
    .await;
    assert!(ok, "kubectl rollout status: {out}");

    // Two revisions, both the set's.
    let revisions: Api<ControllerRevision> = Api::namespaced(c.clone(), ns);
    let list = revisions
        .list(&ListParams::default())
        .await
        .expect("revisions");
    let mut names: Vec<String> = list
        .items
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    names.sort();
    let mut want = vec![r1.clone(), r2.clone()];
    want.sort();
    assert_eq!(names, want);

    // kubectl rollout undo: the old template, the old revision's name, made the latest.
    let (ok, out) = kubectl_async(
        kubeconfig.clone(),
        strings(&["rollout", "undo", "statefulset/web", "-n", ns]),
    )
    .await;
    assert!(ok, "kubectl rollout undo: {out}");
    let (set, pods) = wait_for(&c, ns, "rolled back", |s, p| {
        let st = status_of(s);
        settled(s, p, &["web-0", "web-1", "web-2"], &r1)
            && st.current_revision.as_deref() == Some(r1.as_str())
            && st.update_revision.as_deref() == Some(r1.as_str())
    })
    .await;
    let template_image = set
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone();
    assert_eq!(template_image.as_deref(), Some("nginx:1"));
    assert!(pods.iter().all(|p| image(p) == "nginx:1"));
    let back = revisions.get(&r1).await.expect("revision 1");
    assert_eq!(back.revision, 3, "the restored revision is the latest");
}

/// Parallel: every pod created at once, before any is Ready.
async fn parallel(c: kube::Client) {
    let ns = "parallel";
    create_namespace(&c, ns).await;
    let rec = Recorder::start(&c, ns).await;
    let sets: Api<StatefulSet> = Api::namespaced(c.clone(), ns);
    sets.create(
        &PostParams::default(),
        &statefulset(3, "nginx:1", "Parallel", 3),
    )
    .await
    .expect("creating the set");
    wait_for(&c, ns, "3 pods ready", |s, p| {
        settled(s, p, &["web-0", "web-1", "web-2"], "")
    })
    .await;
    let mut created = BTreeSet::new();
    for e in rec.events() {
        match e {
            Seen::Added(p) => {
                created.insert(name(&p));
            }
            Seen::Modified(p) if is_ready(&p) => {
                assert_eq!(
                    created.len(),
                    3,
                    "{} ready before every pod was created",
                    name(&p)
                );
            }
            _ => {}
        }
    }
    assert_eq!(created.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulsets_end_to_end() {
    let plane = Plane::with_control_plane(2).await;
    let c = plane.client.clone();
    tokio::join!(
        ordered_ready(c.clone()),
        rolling_update(c.clone(), plane.kubeconfig.clone()),
        parallel(c.clone()),
    );
}
