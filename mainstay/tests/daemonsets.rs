//! The DaemonSet controller end to end: a store member, an apiserver, a scheduler, a
//! controller-manager running only the DaemonSet controller, and three simulated nodes, each a
//! process of this binary, driven by kube-rs and kubectl as a user would:
//!
//! - a DaemonSet gets exactly one Running pod on each Ready node, with kube's daemon
//!   tolerations and the `matchFields: metadata.name` node affinity the scheduler binds by; a
//!   node tainted NoSchedule gets none; the status counts as kube's;
//! - a template change rolls out (every pod replaced, a new `controller-revision-hash`, two
//!   ControllerRevisions) and `kubectl rollout status` finishes;
//! - `kubectl rollout undo` patches the old revision's template back: the pods return to the old
//!   hash and the old revision becomes the newest revision number;
//! - removing the taint brings a pod to that node.
//!
//! Needs kubectl 1.32 at /usr/bin/kubectl.

mod common;

use std::path::Path;
use std::process::Command;

use common::eventually;
use common::plane::{wait_ready_nodes, Plane, DEADLINE, SHORT_ELECTION};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "daemons";
const HASH_LABEL: &str = "controller-revision-hash";

fn running_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> &'a str {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map_or("", String::as_str)
}

/// Waits until the DaemonSet's pods are exactly one Running, Ready pod on each of `nodes`
/// (sorted), nothing being deleted, all with revision `hash` when given; returns them sorted by
/// node.
async fn pods_settle(c: &kube::Client, nodes: &[String], hash: Option<&str>) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(c.clone(), NS);
    let what = format!("one ready agent pod on each of {nodes:?} (hash {hash:?})");
    eventually(&what, DEADLINE * 2, || {
        let pods = pods.clone();
        async move {
            let mut list = pods
                .list(&ListParams::default().labels("app=agent"))
                .await
                .ok()?
                .items;
            list.sort_by_key(node_of);
            let on: Vec<String> = list.iter().map(node_of).collect();
            (on == nodes
                && list.iter().all(running_ready)
                && hash.is_none_or(|h| list.iter().all(|p| label(&p.metadata, HASH_LABEL) == h)))
            .then_some(list)
        }
    })
    .await
}

/// Waits for kube's finished-rollout status over `n` nodes at the latest generation.
async fn status_settles(dss: &Api<DaemonSet>, n: i32) -> DaemonSet {
    eventually(
        &format!("the status of {n} scheduled"),
        DEADLINE * 2,
        || {
            let dss = dss.clone();
            async move {
                let ds = dss.get("agent").await.ok()?;
                let s = ds.status.as_ref()?;
                (s.observed_generation >= ds.metadata.generation
                    && s.desired_number_scheduled == n
                    && s.current_number_scheduled == n
                    && s.number_ready == n
                    && s.number_misscheduled == 0
                    && s.updated_number_scheduled == Some(n)
                    && s.number_available == Some(n)
                    && s.number_unavailable.is_none())
                .then_some(ds)
            }
        },
    )
    .await
}

/// The DaemonSet's revisions, by revision number.
async fn revisions(c: &kube::Client) -> Vec<ControllerRevision> {
    let mut list = Api::<ControllerRevision>::namespaced(c.clone(), NS)
        .list(&ListParams::default().labels("app=agent"))
        .await
        .expect("listing revisions")
        .items;
    list.sort_by_key(|r| r.revision);
    list
}

fn image(ds: &DaemonSet) -> String {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// Runs kubectl against the plane; fails the test when it fails.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let kubeconfig = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let shown = args.join(" ");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("/usr/bin/kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args(&args)
            .output()
            .expect("running kubectl (kubectl 1.32 must be at /usr/bin/kubectl)")
    })
    .await
    .expect("kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kubectl {shown} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_runs_on_every_node_rolls_out_and_undoes() {
    let mut plane = Plane::start(&[]).await;
    plane.component("scheduler", &SHORT_ELECTION);
    let mut cm = vec!["--controllers", "daemonset"];
    cm.extend(SHORT_ELECTION);
    plane.component("controller-manager", &cm);
    plane.component("nodes", &["--count", "3"]);
    let c = plane.client.clone();
    wait_ready_nodes(&c, 3).await;

    let node_api: Api<Node> = Api::all(c.clone());
    let mut nodes: Vec<String> = node_api
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    nodes.sort();
    let (eligible, reserved) = (nodes[..2].to_vec(), nodes[2].clone());
    node_api
        .patch(
            &reserved,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [
                {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}})),
        )
        .await
        .expect("tainting a node");

    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).expect("ns");
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating the namespace");
    let dss: Api<DaemonSet> = Api::namespaced(c.clone(), NS);
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": "agent:1"}]},
            },
        },
    }))
    .expect("daemonset");
    dss.create(&PostParams::default(), &ds)
        .await
        .expect("creating the DaemonSet");

    // One pod per eligible node, none on the tainted one.
    let first = pods_settle(&c, &eligible, None).await;
    let hash1 = label(&first[0].metadata, HASH_LABEL).to_string();
    assert!(!hash1.is_empty());
    for (pod, node) in first.iter().zip(&eligible) {
        let v = serde_json::to_value(pod).expect("json");
        assert_eq!(label(&pod.metadata, HASH_LABEL), hash1);
        assert_eq!(label(&pod.metadata, "pod-template-generation"), "1");
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("agent-"));
        let owner = &v["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                &owner["kind"],
                &owner["controller"],
                &owner["blockOwnerDeletion"]
            ),
            (&json!("DaemonSet"), &json!(true), &json!(true))
        );
        assert_eq!(
            v["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
            json!({"nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node]}]}]})
        );
        let tolerations = v["spec"]["tolerations"].as_array().expect("tolerations");
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            assert!(
                tolerations.iter().any(|t| t["key"] == key
                    && t["operator"] == "Exists"
                    && t["effect"] == effect
                    && t.get("tolerationSeconds").is_none()),
                "{key}:{effect} in {tolerations:?}"
            );
        }
    }
    let settled = status_settles(&dss, 2).await;
    assert_eq!(
        settled.status.as_ref().and_then(|s| s.observed_generation),
        Some(1)
    );
    let revs = revisions(&c).await;
    assert_eq!(revs.len(), 1, "{revs:?}");
    assert_eq!(
        revs[0].metadata.name.as_deref(),
        Some(format!("agent-{hash1}").as_str())
    );
    assert_eq!(
        (revs[0].revision, label(&revs[0].metadata, HASH_LABEL)),
        (1, hash1.as_str())
    );

    // A template change rolls out.
    dss.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "agent", "image": "agent:2"}]}}}})),
    )
    .await
    .expect("changing the template");
    let out = kubectl(
        &plane.kubeconfig,
        &[
            "rollout",
            "status",
            "daemonset/agent",
            "-n",
            NS,
            "--timeout=120s",
        ],
    )
    .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let second = pods_settle(&c, &eligible, None).await;
    let hash2 = label(&second[0].metadata, HASH_LABEL).to_string();
    assert_ne!(hash2, hash1);
    assert!(second
        .iter()
        .all(|p| label(&p.metadata, HASH_LABEL) == hash2));
    assert!(second
        .iter()
        .all(|p| first.iter().all(|f| f.metadata.uid != p.metadata.uid)));
    assert!(second
        .iter()
        .all(|p| label(&p.metadata, "pod-template-generation") == "2"));
    let rolled = status_settles(&dss, 2).await;
    assert_eq!(
        rolled.status.as_ref().and_then(|s| s.observed_generation),
        Some(2)
    );
    let revs = revisions(&c).await;
    let numbered: Vec<(i64, &str)> = revs
        .iter()
        .map(|r| (r.revision, label(&r.metadata, HASH_LABEL)))
        .collect();
    assert_eq!(numbered, [(1, hash1.as_str()), (2, hash2.as_str())]);

    // kubectl rollout undo restores revision 1's template; it becomes revision 3.
    kubectl(
        &plane.kubeconfig,
        &["rollout", "undo", "daemonset/agent", "-n", NS],
    )
    .await;
    let undone = dss.get("agent").await.expect("the DaemonSet");
    assert_eq!(image(&undone), "agent:1");
    pods_settle(&c, &eligible, Some(&hash1)).await;
    status_settles(&dss, 2).await;
    eventually("revision 1 renumbered 3", DEADLINE, || {
        let c = c.clone();
        let hash1 = hash1.clone();
        async move {
            let revs = revisions(&c).await;
            let numbered: Vec<(i64, String)> = revs
                .iter()
                .map(|r| (r.revision, label(&r.metadata, HASH_LABEL).to_string()))
                .collect();
            (numbered.len() == 2 && numbered[1] == (3, hash1)).then_some(())
        }
    })
    .await;
    let out = kubectl(
        &plane.kubeconfig,
        &[
            "rollout",
            "status",
            "daemonset/agent",
            "-n",
            NS,
            "--timeout=60s",
        ],
    )
    .await;
    assert!(out.contains("successfully rolled out"), "{out}");

    // The taint goes: the node gets its pod.
    node_api
        .patch(
            &reserved,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": null}})),
        )
        .await
        .expect("removing the taint");
    pods_settle(&c, &nodes, Some(&hash1)).await;
    status_settles(&dss, 3).await;

    let events: Vec<String> = Api::<Event>::namespaced(c.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("agent"))
        .filter_map(|e| e.reason)
        .collect();
    for want in ["SuccessfulCreate", "SuccessfulDelete"] {
        assert!(events.iter().any(|r| r == want), "{want} in {events:?}");
    }
}
