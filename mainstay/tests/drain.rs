//! PodDisruptionBudgets end to end, every part a separate process of this binary (a store
//! member, an apiserver, a scheduler, a controller-manager with the disruption controller, three
//! simulated nodes): the `pods/eviction` subresource through kube-rs (`Api::<Pod>::evict`: a
//! spent budget is kube's 429, two budgets kube's 500, a budget with room lets the pod go), and
//! `kubectl drain` of a node holding two pods of a Deployment whose budget allows one
//! disruption — kubectl is refused with kube's text, retries, and finishes once the first
//! replacement is Ready elsewhere. A watch records every change of the pods, and the check runs
//! over that history: Ready pods never fell below `minAvailable`.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::eventually;
use common::plane::{Plane, DEADLINE};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Every change of the pods of one namespace, as one watch delivers them: (pod uid, whether it
/// counts for the budget — Ready and not being deleted — or None once deleted).
#[derive(Clone)]
struct History(Arc<Mutex<Vec<PodChange>>>);

/// (pod uid, healthy — or None once deleted)
type PodChange = (String, Option<bool>);

impl History {
    async fn record(client: &kube::Client, ns: &str) -> (History, tokio::task::JoinHandle<()>) {
        let changes = History(Arc::new(Mutex::new(Vec::new())));
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let h = changes.clone();
        let task = tokio::spawn(async move {
            let mut synced = Some(synced_tx);
            let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
            while let Some(e) = events.next().await {
                let change = match e {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => (
                        p.metadata.uid.clone().unwrap_or_default(),
                        Some(is_ready(&p) && p.metadata.deletion_timestamp.is_none()),
                    ),
                    Ok(watcher::Event::Delete(p)) => {
                        (p.metadata.uid.clone().unwrap_or_default(), None)
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    Ok(watcher::Event::Init) => continue,
                    Err(e) => panic!("the pod watch failed: {e}"),
                };
                h.0.lock().expect("history").push(change);
            }
        });
        synced_rx.await.expect("the pod watch starts");
        (changes, task)
    }

    fn len(&self) -> usize {
        self.0.lock().expect("history").len()
    }

    /// The fewest healthy pods at any point from change `from` on.
    fn min_healthy_from(&self, from: usize) -> usize {
        let mut healthy: HashMap<String, bool> = HashMap::new();
        let mut min = usize::MAX;
        for (i, (uid, state)) in self.0.lock().expect("history").iter().enumerate() {
            match state {
                Some(h) => {
                    healthy.insert(uid.clone(), *h);
                }
                None => {
                    healthy.remove(uid);
                }
            }
            if i >= from {
                min = min.min(healthy.values().filter(|h| **h).count());
            }
        }
        min
    }
}

async fn budget_status(
    api: &Api<PodDisruptionBudget>,
    name: &str,
    generation: i64,
    allowed: i32,
) -> PodDisruptionBudget {
    eventually(
        &format!("budget {name} at generation {generation} allows {allowed}"),
        DEADLINE,
        || async move {
            let b = api.get(name).await.ok()?;
            let s = b.status.as_ref()?;
            (s.observed_generation == Some(generation)
                && b.metadata.generation == Some(generation)
                && s.disruptions_allowed == allowed)
                .then_some(b)
        },
    )
    .await
}

fn api_error(e: kube::Error) -> kube::core::ErrorResponse {
    match e {
        kube::Error::Api(r) => r,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_respect_budgets_and_kubectl_drain_waits_for_them() {
    let plane = Plane::with_control_plane(3).await;
    let c = &plane.client;
    let ns = "drain";
    let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &n)
        .await
        .expect("creating the namespace");
    let (history, watch) = History::record(c, ns).await;

    // Six replicas on three nodes: two on each.
    let replicas: usize = 6;
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25",
                    "resources": {"requests": {"cpu": "100m"}}}]}}}
    }))
    .expect("a Deployment");
    Api::<Deployment>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .expect("creating the deployment");
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let pods_ref = &pods;
    // Copy (it holds only references), so it serves both waits below.
    let ready_pods = move || async move {
        let list = pods_ref.list(&ListParams::default()).await.ok()?;
        let ready: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none())
            .collect();
        (ready.len() == replicas).then_some(ready)
    };
    let running = eventually("six pods Ready", DEADLINE, ready_pods).await;
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for p in &running {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        *per_node.entry(node).or_default() += 1;
    }
    let (node, on_node) = per_node
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(n, c)| (n.clone(), *c))
        .expect("a node");
    assert!(on_node >= 2, "pods spread as {per_node:?}");

    // A budget that allows nothing: kube's 429 with its cause.
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(c.clone(), ns);
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": replicas, "selector": {"matchLabels": {"app": "web"}}}
    }))
    .expect("a PDB");
    budgets
        .create(&PostParams::default(), &pdb)
        .await
        .expect("creating the budget");
    let b = budget_status(&budgets, "web", 1, 0).await;
    let s = b.status.expect("status");
    assert_eq!(
        (s.current_healthy, s.desired_healthy, s.expected_pods),
        (6, 6, 6)
    );
    let victim = running[0].metadata.name.clone().expect("name");
    let e = api_error(
        pods.evict(&victim, &EvictParams::default())
            .await
            .expect_err("a spent budget refuses"),
    );
    assert_eq!(e.code, 429, "{e:?}");
    assert_eq!(e.reason, "TooManyRequests");
    assert_eq!(
        e.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );

    // Two budgets for one pod: kube's 500.
    let mut second = pdb.clone();
    second.metadata.name = Some("also-web".into());
    budgets
        .create(&PostParams::default(), &second)
        .await
        .expect("creating a second budget");
    let e = api_error(
        pods.evict(&victim, &EvictParams::default())
            .await
            .expect_err("two budgets refuse"),
    );
    assert_eq!(e.code, 500, "{e:?}");
    assert_eq!(
        e.message,
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
    budgets
        .delete("also-web", &Default::default())
        .await
        .expect("deleting the second budget");

    // minAvailable N-1: one disruption at a time.
    budgets
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"minAvailable": replicas - 1}})),
        )
        .await
        .expect("relaxing the budget");
    budget_status(&budgets, "web", 2, 1).await;

    let from = history.len();
    let drain = tokio::task::spawn_blocking({
        let kubeconfig = plane.kubeconfig.clone();
        let node = node.clone();
        move || {
            Command::new("kubectl")
                .env("KUBECONFIG", &kubeconfig)
                .args([
                    "drain",
                    &node,
                    "--ignore-daemonsets",
                    "--delete-emptydir-data",
                    "--timeout=90s",
                    "--request-timeout=20s",
                ])
                .output()
                .expect("running kubectl drain (kubectl 1.32 must be on PATH)")
        }
    });
    let out = drain.await.expect("kubectl drain");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubectl drain failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "no eviction was refused:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("node/{node} drained")),
        "{stdout}\n{stderr}"
    );

    // Cordoned, empty of the deployment's pods, and the replacements Ready elsewhere.
    let n = Api::<Node>::all(c.clone())
        .get(&node)
        .await
        .expect("the node");
    assert_eq!(n.spec.and_then(|s| s.unschedulable), Some(true));
    let back = eventually("six pods Ready again", DEADLINE, ready_pods).await;
    assert!(back
        .iter()
        .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node.as_str())));
    // The history is whole only if the watch never failed (its task panics on an error).
    assert!(
        !watch.is_finished(),
        "the pod watch ended during the test: the history is incomplete"
    );
    watch.abort();
    let evicted = history.min_healthy_from(from);
    assert!(
        evicted >= replicas - 1,
        "only {evicted} healthy pods at one point of the drain (minAvailable {})",
        replicas - 1
    );
}
