//! A node dies and comes back, every part a separate process of this binary: a store member,
//! an apiserver, a scheduler, a controller-manager (node lifecycle, taint eviction, node IPAM
//! and pod GC among its controllers) and one `mainstay nodes` process with three nodes, one of
//! which is stopped through the process's admin endpoint (`mainstay nodes-admin`), as when its
//! machine dies.
//!
//! With a 5 s `--node-monitor-grace-period` (kube: 50 s), nodes' Leases of 4 s (renewed every
//! second) and pods tolerating `unreachable` for 2 s (kube's admission default: 300 s), the
//! dead node goes Ready=Unknown, gets the `node.kubernetes.io/unreachable` taints, its pods are
//! marked for deletion and the Deployment's replacements run on the other nodes; started
//! again, it is Ready, untainted, its old pods are gone, and it gets new pods. The time from
//! the stop to all of the Deployment's pods Running elsewhere is printed with the settings.

mod common;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::time::Instant;

use common::eventually;
use common::plane::{Plane, DEADLINE};

const GRACE: &str = "5s";
const MONITOR_PERIOD: &str = "1s";
const TOLERATION_SECONDS: i64 = 2;
const LEASE_SECONDS: &str = "4";
const NS: &str = "failure";

fn cond<'a>(n: &'a Node, t: &str) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
}

fn taint_keys(n: &Node) -> Vec<String> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|t| {
            t.iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        })
        .unwrap_or_default()
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

fn running_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn web_pods(c: &kube::Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(c.clone(), NS)
        .list(&ListParams::default().labels("app=web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// `mainstay nodes-admin <action> <node> --address ...`, as a user would run it.
fn nodes_admin(address: &str, action: &str, node: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_mainstay"))
        .args(["nodes-admin", action, node, "--address", address])
        .output()
        .expect("running mainstay nodes-admin");
    assert!(
        out.status.success(),
        "nodes-admin {action} {node}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "nginx",
                        "resources": {"requests": {"cpu": "1"}},
                    }],
                    "tolerations": [
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": TOLERATION_SECONDS},
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": TOLERATION_SECONDS},
                    ],
                },
            },
        },
    }))
    .expect("deployment")
}

fn completed_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"app": "done"},
            "annotations": {"mainstay.io/run-seconds": "0.1"},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}],
        },
    }))
    .expect("pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_tainted_its_pods_move_and_it_comes_back() {
    let mut plane = Plane::start(&[]).await;
    plane.component("scheduler", &["--leader-elect=false"]);
    plane.component(
        "controller-manager",
        &[
            "--leader-elect=false",
            "--node-monitor-period",
            MONITOR_PERIOD,
            "--node-monitor-grace-period",
            GRACE,
            "--allocate-node-cidrs",
            "--cluster-cidr",
            "10.244.0.0/16",
            "--terminated-pod-gc-threshold",
            "2",
        ],
    );
    let admin_port = common::free_port().to_string();
    let admin = format!("127.0.0.1:{admin_port}");
    plane.component(
        "nodes",
        &[
            "--count",
            "3",
            "--secure-port",
            &admin_port,
            "--register-pod-cidr=false",
            "--node-lease-duration-seconds",
            LEASE_SECONDS,
        ],
    );
    let client = plane.client.clone();
    let nodes_api: Api<Node> = Api::all(client.clone());

    // Node IPAM: every node gets its own /24 of the cluster CIDR.
    let cidrs = eventually("every node has a pod CIDR", DEADLINE, || {
        let api = nodes_api.clone();
        async move {
            let l = api.list(&ListParams::default()).await.ok()?;
            let cidrs: Vec<String> = l
                .items
                .iter()
                .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
                .collect();
            (l.items.len() == 3 && cidrs.len() == 3).then_some(cidrs)
        }
    })
    .await;
    let mut distinct = cidrs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "pod CIDRs given twice: {cidrs:?}");
    for c in &cidrs {
        assert!(c.starts_with("10.244.") && c.ends_with(".0/24"), "{c}");
    }

    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
        )
        .await
        .expect("namespace");
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    // Pod GC: three finished pods with a threshold of two; the oldest goes.
    for i in 0..3 {
        pods_api
            .create(&PostParams::default(), &completed_pod(&format!("done-{i}")))
            .await
            .expect("pod");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deploys
        .create(&PostParams::default(), &deployment(6))
        .await
        .expect("deployment");
    let before = eventually("six web pods Running", DEADLINE, || {
        let c = client.clone();
        async move {
            let pods = web_pods(&c).await;
            (pods.iter().filter(|p| running_ready(p)).count() == 6).then_some(pods)
        }
    })
    .await;
    // Pod IPs come from the node's CIDR.
    for p in &before {
        let node = nodes_api.get(&node_of(p)).await.expect("node");
        let cidr = node.spec.unwrap().pod_cidr.unwrap();
        let prefix = cidr.rsplit_once('.').unwrap().0.to_string() + ".";
        let ip = p
            .status
            .as_ref()
            .unwrap()
            .pod_ip
            .clone()
            .unwrap_or_default();
        assert!(ip.starts_with(&prefix), "pod IP {ip} outside {cidr}");
    }
    // The node with the most web pods dies.
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for p in &before {
        *counts.entry(node_of(p)).or_default() += 1;
    }
    let (victim, victims) = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(k, n)| (k.clone(), *n))
        .unwrap();
    let stopped_at = Instant::now();
    nodes_admin(&admin, "stop", &victim);

    let unknown = eventually("the dead node is Ready=Unknown", DEADLINE, || {
        let api = nodes_api.clone();
        let victim = victim.clone();
        async move {
            let n = api.get(&victim).await.ok()?;
            (cond(&n, "Ready")?.status == "Unknown").then_some(n)
        }
    })
    .await;
    let unknown_after = stopped_at.elapsed();
    let ready = cond(&unknown, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(cond(&unknown, t).unwrap().status, "Unknown", "{t}");
    }
    eventually("the dead node is tainted unreachable", DEADLINE, || {
        let api = nodes_api.clone();
        let victim = victim.clone();
        async move {
            let keys = taint_keys(&api.get(&victim).await.ok()?);
            (keys.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string())
                && keys.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string()))
            .then_some(())
        }
    })
    .await;
    let tainted_after = stopped_at.elapsed();

    let moved = eventually("six web pods Running on the other nodes", DEADLINE, || {
        let c = client.clone();
        let victim = victim.clone();
        async move {
            let pods = web_pods(&c).await;
            let elsewhere = pods
                .iter()
                .filter(|p| running_ready(p) && node_of(p) != victim)
                .count();
            (elsewhere == 6).then_some(pods)
        }
    })
    .await;
    let moved_after = stopped_at.elapsed();
    println!(
        "node failure: settings --node-monitor-grace-period {GRACE}, --node-monitor-period {MONITOR_PERIOD}, \
         node Lease {LEASE_SECONDS} s (renewed every {} ms), tolerationSeconds {TOLERATION_SECONDS} for unreachable/not-ready, \
         --node-eviction-rate 0.1 (3 nodes); {victims} of 6 pods on the stopped node: \
         Ready=Unknown after {:.1} s, NoExecute taint after {:.1} s, all 6 pods Running elsewhere after {:.1} s",
        LEASE_SECONDS.parse::<u64>().unwrap() * 250,
        unknown_after.as_secs_f64(),
        tainted_after.as_secs_f64(),
        moved_after.as_secs_f64(),
    );
    // The dead node's pods: not Ready, marked as disrupted, and being deleted (the dead
    // kubelet cannot finish it).
    let stranded: Vec<&Pod> = moved.iter().filter(|p| node_of(p) == victim).collect();
    assert_eq!(
        stranded.len(),
        victims,
        "the dead node's pods stay until it returns"
    );
    for p in &stranded {
        assert!(p.metadata.deletion_timestamp.is_some(), "evicted");
        let conds = p.status.as_ref().unwrap().conditions.as_ref().unwrap();
        let dt = conds
            .iter()
            .find(|c| c.type_ == "DisruptionTarget")
            .expect("DisruptionTarget");
        assert_eq!(dt.reason.as_deref(), Some("DeletionByTaintManager"));
        assert_eq!(
            dt.message.as_deref(),
            Some("Taint manager: deleting due to NoExecute taint")
        );
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False", "MarkPodsNotReady");
    }
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let marked = eventually("TaintManagerEviction events", DEADLINE, || {
        let events = events.clone();
        async move {
            let l = events.list(&ListParams::default()).await.ok()?;
            let msgs: Vec<String> = l
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("TaintManagerEviction"))
                .filter_map(|e| e.message)
                .collect();
            (msgs.len() >= victims).then_some(msgs)
        }
    })
    .await;
    for p in &stranded {
        let want = format!(
            "Marking for deletion Pod {NS}/{}",
            p.metadata.name.as_deref().unwrap()
        );
        assert!(marked.contains(&want), "{want} in {marked:?}");
    }

    // Back from the dead.
    let started_at = Instant::now();
    nodes_admin(&admin, "start", &victim);
    eventually("the node is Ready and untainted", DEADLINE, || {
        let api = nodes_api.clone();
        let victim = victim.clone();
        async move {
            let n = api.get(&victim).await.ok()?;
            let keys = taint_keys(&n);
            (cond(&n, "Ready")?.status == "True"
                && !keys
                    .iter()
                    .any(|k| k.starts_with("node.kubernetes.io/unreachable")))
            .then_some(())
        }
    })
    .await;
    println!(
        "node restart: Ready and untainted after {:.1} s",
        started_at.elapsed().as_secs_f64()
    );
    eventually("the old pods are gone", DEADLINE, || {
        let c = client.clone();
        let victim = victim.clone();
        async move {
            let pods = web_pods(&c).await;
            (!pods.iter().any(|p| node_of(p) == victim)).then_some(())
        }
    })
    .await;
    // It takes pods again: three more, each asking a CPU, go to the emptiest node first.
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}})),
        )
        .await
        .expect("scale");
    eventually("the returned node runs web pods", DEADLINE, || {
        let c = client.clone();
        let victim = victim.clone();
        async move {
            let pods = web_pods(&c).await;
            let ready = pods.iter().filter(|p| running_ready(p)).count();
            (ready == 9
                && pods
                    .iter()
                    .any(|p| running_ready(p) && node_of(p) == victim))
            .then_some(())
        }
    })
    .await;

    // Pod GC (every 20 s): the oldest finished pod goes first and the newest stays (other
    // pods that end meanwhile count against the threshold too, so more may go).
    eventually("pod GC deletes the oldest finished pod", DEADLINE, || {
        let api = pods_api.clone();
        async move {
            let l = api
                .list(&ListParams::default().labels("app=done"))
                .await
                .ok()?;
            let names: Vec<String> = l
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            (names.len() <= 2
                && !names.contains(&"done-0".to_string())
                && names.contains(&"done-2".to_string()))
            .then_some(())
        }
    })
    .await;
    drop(plane);
}
