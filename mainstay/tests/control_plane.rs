//! The control plane end to end, every part a separate process of this binary: a store member,
//! apiservers (plain HTTP on loopback), schedulers and controller-managers that elect leaders
//! with Leases, and simulated nodes. kube-rs clients act as users do; one watch records every
//! change of the pods in a namespace, in resourceVersion order, and the checks run over that
//! history (bounds during rollouts, no pod bound twice), not over a lucky final state.
//!
//! The components use a 4 s lease (3 s renew deadline, 250 ms retry period) so a failover fits a
//! test; `MAINSTAY_TEST_LEASE=15s` runs the failover test with kube's defaults (15 s, 10 s, 2 s)
//! instead, by hand.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{json, Value};
use tokio::time::Instant;

use common::eventually;
use common::plane::{client_for, ready_nodes, serving, strings, write_kubeconfig, Proc, DEADLINE};

/// The tests share two cores: one plane at a time, so their timings mean something.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// Processes.

/// Leader-election flags for the scheduler and controller-manager.
struct Election {
    lease: Duration,
    retry: Duration,
    flags: Vec<String>,
}

impl Election {
    fn from_env() -> Election {
        let kube_defaults = std::env::var("MAINSTAY_TEST_LEASE").is_ok_and(|v| v == "15s");
        let (lease, renew, retry) = if kube_defaults {
            (15_000, 10_000, 2_000)
        } else {
            (4_000, 3_000, 250)
        };
        Election {
            lease: Duration::from_millis(lease),
            retry: Duration::from_millis(retry),
            flags: vec![
                "--leader-elect-lease-duration".into(),
                format!("{lease}ms"),
                "--leader-elect-renew-deadline".into(),
                format!("{renew}ms"),
                "--leader-elect-retry-period".into(),
                format!("{retry}ms"),
            ],
        }
    }
}

struct PlaneOptions {
    apiservers: usize,
    /// Schedulers and controller-managers (one of each per master).
    masters: usize,
    nodes: usize,
    node_args: Vec<String>,
}

/// A store member, apiservers, components and nodes. Dropped in reverse order of start.
struct Plane {
    nodes: Vec<Proc>,
    schedulers: Vec<Proc>,
    managers: Vec<Proc>,
    _apiservers: Vec<Proc>,
    _store: common::Server,
    kubeconfigs: Vec<PathBuf>,
    client: kube::Client,
    election: Election,
    dir: tempfile::TempDir,
}

impl Plane {
    async fn start(o: PlaneOptions) -> Plane {
        let dir = common::temp_dir();
        let store = common::Server::start(&[]).await;
        let mut apiservers = Vec::new();
        let mut kubeconfigs = Vec::new();
        let mut urls = Vec::new();
        for i in 0..o.apiservers {
            let port = common::free_port();
            apiservers.push(Proc::spawn(
                dir.path(),
                &format!("apiserver-{i}"),
                &strings(&[
                    "apiserver",
                    "--etcd-servers",
                    &store.endpoint(),
                    "--bind-address",
                    "127.0.0.1",
                    "--secure-port",
                    &port.to_string(),
                ]),
            ));
            let url = format!("http://127.0.0.1:{port}");
            let kc = dir.path().join(format!("master-{i}.kubeconfig"));
            write_kubeconfig(&kc, &url);
            kubeconfigs.push(kc);
            urls.push(url);
        }
        for url in &urls {
            serving(&client_for(url)).await;
        }
        let election = Election::from_env();
        let mut schedulers = Vec::new();
        let mut managers = Vec::new();
        for i in 0..o.masters {
            let kc = kubeconfigs[i % kubeconfigs.len()].display().to_string();
            for (component, list) in [
                ("scheduler", &mut schedulers),
                ("controller-manager", &mut managers),
            ] {
                let mut args = strings(&[component, "--kubeconfig", &kc]);
                args.extend(election.flags.iter().cloned());
                list.push(Proc::spawn(dir.path(), &format!("{component}-{i}"), &args));
            }
        }
        let mut plane = Plane {
            nodes: Vec::new(),
            schedulers,
            managers,
            _apiservers: apiservers,
            _store: store,
            client: client_for(&urls[0]),
            kubeconfigs,
            election,
            dir,
        };
        if o.nodes > 0 {
            let mut args = vec!["--count".to_string(), o.nodes.to_string()];
            args.extend(o.node_args);
            plane.add_nodes("nodes-0", &args).await;
        }
        plane
    }

    /// Starts a `mainstay nodes` process and waits until its nodes are Ready.
    async fn add_nodes(&mut self, name: &str, extra: &[String]) {
        let before = ready_nodes(&self.client).await.len();
        let count: usize = extra
            .iter()
            .position(|a| a == "--count")
            .and_then(|i| extra.get(i + 1))
            .and_then(|c| c.parse().ok())
            .expect("--count N");
        let mut args = strings(&[
            "nodes",
            "--kubeconfig",
            &self.kubeconfigs[0].display().to_string(),
        ]);
        args.extend(extra.iter().cloned());
        self.nodes.push(Proc::spawn(self.dir.path(), name, &args));
        let c = self.client.clone();
        eventually("the nodes are Ready", DEADLINE, || {
            let c = c.clone();
            async move { (ready_nodes(&c).await.len() >= before + count).then_some(()) }
        })
        .await;
    }

    /// The index of the process (in `procs`) whose identity holds the Lease `name` (each logs its
    /// identity when it starts campaigning).
    async fn leader(&self, lease: &str, procs: &[Proc]) -> usize {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-system");
        eventually(&format!("a leader of {lease}"), DEADLINE, || {
            let leases = leases.clone();
            async move {
                let holder = leases
                    .get(lease)
                    .await
                    .ok()?
                    .spec?
                    .holder_identity
                    .filter(|h| !h.is_empty())?;
                {
                    let mine = format!("identity={holder}");
                    procs.iter().position(|p| p.log().contains(&mine))
                }
            }
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// The pod history.

/// A pod as one watch event showed it.
#[derive(Clone, Debug, PartialEq)]
struct PodState {
    name: String,
    node: Option<String>,
    phase: String,
    ready: bool,
    terminating: bool,
    image: String,
    owner: Option<String>,
}

impl PodState {
    fn of(p: &Pod) -> PodState {
        let status = p.status.as_ref();
        PodState {
            name: p.metadata.name.clone().unwrap_or_default(),
            node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
            phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            terminating: p.metadata.deletion_timestamp.is_some(),
            image: p
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            owner: p
                .metadata
                .owner_references
                .as_ref()
                .and_then(|o| o.iter().find(|r| r.controller == Some(true)))
                .map(|r| r.name.clone()),
        }
    }

    /// Counted by a ReplicaSet (not terminating, not finished).
    fn active(&self) -> bool {
        !self.terminating && self.phase != "Succeeded" && self.phase != "Failed"
    }

    /// Available with minReadySeconds 0.
    fn available(&self) -> bool {
        self.active() && self.ready
    }
}

/// (when seen, pod uid, the pod or None once deleted)
type Change = (Instant, String, Option<PodState>);

/// Every change of the pods in one namespace, as one watch delivers them.
#[derive(Clone)]
struct PodHistory {
    changes: Arc<Mutex<Vec<Change>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl PodHistory {
    async fn record(client: &kube::Client, ns: &str) -> PodHistory {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let task = tokio::spawn({
            let changes = changes.clone();
            async move {
                let mut synced = Some(synced_tx);
                let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
                while let Some(e) = events.next().await {
                    let now = Instant::now();
                    let change = match e {
                        Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => (
                            now,
                            p.metadata.uid.clone().unwrap_or_default(),
                            Some(PodState::of(&p)),
                        ),
                        Ok(watcher::Event::Delete(p)) => {
                            (now, p.metadata.uid.clone().unwrap_or_default(), None)
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
                    changes.lock().expect("history").push(change);
                }
            }
        });
        synced_rx.await.expect("the pod watch starts");
        PodHistory {
            changes,
            task: Arc::new(task),
        }
    }

    fn len(&self) -> usize {
        self.changes.lock().expect("history").len()
    }

    fn changes(&self) -> Vec<Change> {
        self.changes.lock().expect("history").clone()
    }

    /// Replays the history, calling `check(index, time, pods)` after every change from `from`
    /// on (the pods as they stood then, by uid).
    fn replay(
        &self,
        from: usize,
        mut check: impl FnMut(usize, Instant, &HashMap<String, PodState>),
    ) {
        let mut pods: HashMap<String, PodState> = HashMap::new();
        for (i, (at, uid, state)) in self.changes().into_iter().enumerate() {
            match state {
                Some(s) => {
                    pods.insert(uid, s);
                }
                None => {
                    pods.remove(&uid);
                }
            }
            if i >= from {
                check(i, at, &pods);
            }
        }
    }

    /// Pods of the deployment `app` (by ReplicaSet name prefix).
    fn of_deployment<'a>(
        pods: &'a HashMap<String, PodState>,
        app: &'a str,
    ) -> impl Iterator<Item = &'a PodState> + 'a {
        pods.values().filter(move |p| {
            p.owner
                .as_deref()
                .is_some_and(|o| o.strip_prefix(app).is_some_and(|r| r.starts_with('-')))
        })
    }

    /// From change `from` on: never more than `max_active` active pods of `app`, never fewer
    /// than `min_available` available ones.
    fn check_bounds(&self, from: usize, app: &str, max_active: usize, min_available: usize) {
        self.replay(from, |i, _, pods| {
            let active = Self::of_deployment(pods, app)
                .filter(|p| p.active())
                .count();
            let available = Self::of_deployment(pods, app)
                .filter(|p| p.available())
                .count();
            assert!(
                active <= max_active,
                "change {i}: {active} active pods of {app}, more than {max_active}"
            );
            assert!(
                available >= min_available,
                "change {i}: {available} available pods of {app}, fewer than {min_available}"
            );
        });
    }

    /// No pod was ever bound to two nodes, nor unbound once bound.
    fn check_bound_once(&self) {
        let mut bound: HashMap<String, String> = HashMap::new();
        for (_, uid, state) in self.changes() {
            let Some(node) = state.and_then(|s| s.node) else {
                continue;
            };
            if let Some(prev) = bound.insert(uid.clone(), node.clone()) {
                assert_eq!(prev, node, "pod {uid} was bound twice");
            }
        }
    }

    /// When a pod first showed up created after change `from` and matching `pred`.
    fn first_new(&self, from: usize, pred: impl Fn(&PodState) -> bool) -> Option<Instant> {
        let changes = self.changes();
        let known: BTreeSet<&String> = changes[..from].iter().map(|(_, uid, _)| uid).collect();
        changes[from..]
            .iter()
            .find(|(_, uid, s)| !known.contains(uid) && s.as_ref().is_some_and(&pred))
            .map(|(at, _, _)| *at)
    }

    /// When a pod first showed up bound after change `from` that was unbound at or after it.
    fn first_binding(&self, from: usize) -> Option<Instant> {
        let changes = self.changes();
        let mut unbound: BTreeSet<String> = BTreeSet::new();
        for (i, (at, uid, s)) in changes.iter().enumerate() {
            match s {
                Some(s) if s.node.is_none() => {
                    unbound.insert(uid.clone());
                }
                Some(_) if i >= from && unbound.contains(uid) => return Some(*at),
                Some(_) => {
                    unbound.remove(uid);
                }
                None => {
                    unbound.remove(uid);
                }
            }
        }
        None
    }
}

impl Drop for PodHistory {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Objects.

async fn namespace(c: &kube::Client, ns: &str) {
    let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &n)
        .await
        .expect("creating the namespace");
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "c",
                    "image": image,
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}
                }]}
            }
        }
    }))
    .expect("a Deployment")
}

fn bare_pod(name: &str, cpu: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{
            "name": "c",
            "image": "busybox",
            "resources": {"requests": {"cpu": cpu}}
        }]}
    }))
    .expect("a Pod")
}

async fn patch_deploy(api: &Api<Deployment>, name: &str, patch: Value) {
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("patching the deployment");
}

fn set_image(image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
}

/// Waits as `kubectl rollout status` does: the latest generation observed, every replica
/// updated and available, no old replica left.
async fn rolled_out(api: &Api<Deployment>, name: &str) -> Deployment {
    eventually(&format!("deployment {name} rolled out"), DEADLINE, || {
        let api = api.clone();
        async move {
            let d = api.get(name).await.ok()?;
            let want = d.spec.as_ref()?.replicas.unwrap_or(1);
            let s = d.status.as_ref()?;
            let done = s.observed_generation >= d.metadata.generation
                && s.updated_replicas.unwrap_or(0) == want
                && s.replicas.unwrap_or(0) == want
                && s.available_replicas.unwrap_or(0) == want;
            done.then_some(d)
        }
    })
    .await
}

async fn replica_sets(c: &kube::Client, ns: &str, app: &str) -> Vec<ReplicaSet> {
    Api::<ReplicaSet>::namespaced(c.clone(), ns)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("listing replicasets")
        .items
}

fn revision(rs: &ReplicaSet) -> Option<String> {
    rs.metadata
        .annotations
        .as_ref()?
        .get("deployment.kubernetes.io/revision")
        .cloned()
}

fn rs_image(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

async fn running_pods(c: &kube::Client, ns: &str, app: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(c.clone(), ns)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("listing pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

async fn events(c: &kube::Client, ns: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("listing events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// Deployment → ReplicaSet → Pods → bound → Running, then a rollout, an undo (the JSON patch
/// `kubectl rollout undo` sends), pause/resume, and a scale in the middle of a rollout, each
/// checked against maxSurge/maxUnavailable on every change the pod watch saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_roll_out_within_their_bounds() {
    let _serial = SERIAL.lock().await;
    let plane = Plane::start(PlaneOptions {
        apiservers: 1,
        masters: 1,
        nodes: 3,
        node_args: Vec::new(),
    })
    .await;
    let c = plane.client.clone();
    let ns = "rollout";
    namespace(&c, ns).await;
    let history = PodHistory::record(&c, ns).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), ns);

    // Create: 4 replicas (25% → maxSurge 1, maxUnavailable 1).
    let started = Instant::now();
    deploys
        .create(&PostParams::default(), &deployment("web", 4, "nginx:1.0"))
        .await
        .expect("creating the deployment");
    rolled_out(&deploys, "web").await;
    eprintln!(
        "4 pods Running and available {:.2} s after the create",
        started.elapsed().as_secs_f64()
    );
    let pods = running_pods(&c, ns, "web").await;
    assert_eq!(pods.len(), 4);
    let mut nodes = BTreeSet::new();
    for p in &pods {
        let s = p.status.as_ref().expect("status");
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert!(s.pod_ip.is_some() && s.host_ip.is_some() && s.start_time.is_some());
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .expect("bound");
        nodes.insert(node);
        let hash = p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"));
        let owner = &p.metadata.owner_references.as_ref().expect("owned")[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(
            Some(&owner.name),
            Some(&format!("web-{}", hash.expect("hash")))
        );
    }
    assert_eq!(
        nodes.len(),
        3,
        "a controller's pods are spread over the nodes: {nodes:?}"
    );
    let scheduled = events(&c, ns, "Scheduled").await;
    for p in &pods {
        let name = p.metadata.name.as_deref().expect("name");
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .expect("node");
        let want = format!("Successfully assigned {ns}/{name} to {node}");
        assert!(
            scheduled
                .iter()
                .any(|e| e.message.as_deref() == Some(want.as_str())),
            "no Scheduled event {want:?}"
        );
    }
    let rss = replica_sets(&c, ns, "web").await;
    assert_eq!(rss.len(), 1);
    assert_eq!(revision(&rss[0]).as_deref(), Some("1"));

    // Roll out nginx:1.1.
    let from = history.len();
    patch_deploy(&deploys, "web", set_image("nginx:1.1")).await;
    let d = rolled_out(&deploys, "web").await;
    history.check_bounds(from, "web", 5, 3);
    let progressing = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Progressing").cloned())
        .expect("a Progressing condition");
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    for p in running_pods(&c, ns, "web").await {
        assert_eq!(PodState::of(&p).image, "nginx:1.1");
    }

    // Undo as kubectl does: replace the template with revision 1's (without its hash label).
    let rss = replica_sets(&c, ns, "web").await;
    let first = rss
        .iter()
        .find(|rs| revision(rs).as_deref() == Some("1"))
        .expect("revision 1 is kept");
    let mut template = serde_json::to_value(first.spec.as_ref().and_then(|s| s.template.clone()))
        .expect("template");
    template["metadata"]["labels"]
        .as_object_mut()
        .expect("labels")
        .remove("pod-template-hash");
    let from = history.len();
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::<Value>::Json(
                serde_json::from_value(
                    json!([{"op": "replace", "path": "/spec/template", "value": template}]),
                )
                .expect("a JSON patch"),
            ),
        )
        .await
        .expect("undo");
    let d = rolled_out(&deploys, "web").await;
    history.check_bounds(from, "web", 5, 3);
    let rss = replica_sets(&c, ns, "web").await;
    assert_eq!(rss.len(), 2, "the old ReplicaSet was reused, not copied");
    let back = rss
        .iter()
        .find(|rs| rs_image(rs) == "nginx:1.0")
        .expect("1.0's RS");
    assert_eq!(revision(back).as_deref(), Some("3"));
    assert_eq!(
        back.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision-history"))
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .map(String::as_str),
        Some("3")
    );

    // Pause: a template change makes no ReplicaSet until resumed.
    patch_deploy(&deploys, "web", json!({"spec": {"paused": true}})).await;
    patch_deploy(&deploys, "web", set_image("nginx:1.2")).await;
    eventually("the Progressing condition says paused", DEADLINE, || {
        let deploys = deploys.clone();
        async move {
            let d = deploys.get("web").await.ok()?;
            let s = d.status.as_ref()?;
            (s.observed_generation >= d.metadata.generation).then_some(())?;
            s.conditions
                .as_ref()?
                .iter()
                .find(|c| {
                    c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused")
                })
                .map(|_| ())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !replica_sets(&c, ns, "web")
            .await
            .iter()
            .any(|rs| rs_image(rs) == "nginx:1.2"),
        "a paused deployment made a ReplicaSet"
    );
    let from = history.len();
    patch_deploy(&deploys, "web", json!({"spec": {"paused": false}})).await;
    rolled_out(&deploys, "web").await;
    history.check_bounds(from, "web", 5, 3);
    for p in running_pods(&c, ns, "web").await {
        assert_eq!(PodState::of(&p).image, "nginx:1.2");
    }

    // Scale from 4 to 8 in the middle of a rollout to nginx:1.3.
    let from = history.len();
    patch_deploy(&deploys, "web", set_image("nginx:1.3")).await;
    eventually("the new ReplicaSet has a pod", DEADLINE, || {
        let h = history.clone();
        async move { h.first_new(from, |p| p.image == "nginx:1.3").map(|_| ()) }
    })
    .await;
    patch_deploy(&deploys, "web", json!({"spec": {"replicas": 8}})).await;
    rolled_out(&deploys, "web").await;
    history.check_bounds(from, "web", 8 + 2, 3);
    let pods = running_pods(&c, ns, "web").await;
    assert_eq!(pods.len(), 8);
    assert!(pods.iter().all(|p| PodState::of(p).image == "nginx:1.3"));
    let rss = replica_sets(&c, ns, "web").await;
    for rs in &rss {
        let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let expected = if rs_image(rs) == "nginx:1.3" { 8 } else { 0 };
        assert_eq!(want, expected, "{:?}", rs.metadata.name);
    }
    history.check_bound_once();
}

/// A pod no node can hold stays Pending with kube's FailedScheduling Event and condition, and is
/// placed once a node that fits registers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pods_wait_and_are_placed_when_a_node_appears() {
    let _serial = SERIAL.lock().await;
    let mut plane = Plane::start(PlaneOptions {
        apiservers: 1,
        masters: 1,
        nodes: 3,
        node_args: strings(&["--cpu", "1"]),
    })
    .await;
    let c = plane.client.clone();
    let ns = "pending";
    namespace(&c, ns).await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);

    // The nodes registered as a kubelet does, with their Leases.
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    for n in ready_nodes(&c).await {
        let l = leases.get(&n).await.expect("a node lease");
        let spec = l.spec.expect("lease spec");
        assert_eq!(spec.holder_identity.as_deref(), Some(n.as_str()));
        assert_eq!(spec.lease_duration_seconds, Some(40));
    }

    pods.create(&PostParams::default(), &bare_pod("big", "2"))
        .await
        .expect("creating the pod");
    let failed = eventually("a FailedScheduling event", DEADLINE, || {
        let c = c.clone();
        async move { events(&c, ns, "FailedScheduling").await.into_iter().next() }
    })
    .await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    let message = failed.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("0/3 nodes are available: 3 Insufficient cpu."),
        "{message}"
    );
    let p = pods.get("big").await.expect("the pod");
    assert_eq!(p.spec.as_ref().and_then(|s| s.node_name.clone()), None);
    let cond = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled").cloned())
        .expect("a PodScheduled condition");
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));

    plane
        .add_nodes(
            "nodes-big",
            &strings(&["--count", "1", "--name-prefix", "big-", "--cpu", "4"]),
        )
        .await;
    let node = eventually("the pod runs on the new node", DEADLINE, || {
        let pods = pods.clone();
        async move {
            let p = pods.get("big").await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())?;
            p.spec?.node_name
        }
    })
    .await;
    assert!(node.starts_with("big-"), "placed on {node}");
}

/// kill -9 the leading scheduler and controller-manager as a rollout and a scale-up start;
/// others take over and finish. A clean stop hands the Lease over at once; a leader frozen past
/// its lease (SIGSTOP, then SIGCONT) acts no more and exits 1. No pod is ever bound twice and
/// every ReplicaSet settles at the count asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_fail_over() {
    let _serial = SERIAL.lock().await;
    let mut plane = Plane::start(PlaneOptions {
        apiservers: 3,
        masters: 3,
        nodes: 3,
        node_args: Vec::new(),
    })
    .await;
    let lease = plane.election.lease;
    let retry = plane.election.retry;
    let c = plane.client.clone();
    let ns = "failover";
    namespace(&c, ns).await;
    let history = PodHistory::record(&c, ns).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    deploys
        .create(&PostParams::default(), &deployment("web", 3, "nginx:1.0"))
        .await
        .expect("creating the deployment");
    rolled_out(&deploys, "web").await;

    // 1. kill -9 both leaders, then ask for a rollout and a scale-up and a new pod.
    let s = plane.leader("kube-scheduler", &plane.schedulers).await;
    let m = plane
        .leader("kube-controller-manager", &plane.managers)
        .await;
    let killed = Instant::now();
    plane.schedulers[s].signal("KILL");
    plane.managers[m].signal("KILL");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let from = history.len();
    patch_deploy(
        &deploys,
        "web",
        json!({"spec": {"replicas": 9, "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.1"}]}}}}),
    )
    .await;
    pods.create(&PostParams::default(), &bare_pod("solo", "100m"))
        .await
        .expect("creating a pod");
    rolled_out(&deploys, "web").await;
    let created = history
        .first_new(from, |p| p.owner.is_some())
        .expect("the new controller-manager made pods");
    let bound = history
        .first_binding(from)
        .expect("the new scheduler bound a pod");
    let cm_takeover = created - killed;
    let sched_takeover = bound - killed;
    eprintln!(
        "failover (lease {lease:?}, retry {retry:?}): kill -9 to the new controller-manager's first pod {:.2} s, to the new scheduler's first binding {:.2} s",
        cm_takeover.as_secs_f64(),
        sched_takeover.as_secs_f64()
    );
    // kube's figure: a lease duration plus one retry, here bounded by the 5 s and 17 s.
    let bound_s = if lease <= Duration::from_secs(4) {
        5
    } else {
        17
    };
    assert!(
        cm_takeover < Duration::from_secs(bound_s),
        "{cm_takeover:?}"
    );
    assert!(
        sched_takeover < Duration::from_secs(bound_s),
        "{sched_takeover:?}"
    );
    // As `mainstay dev` does, start the killed ones again: they campaign as new candidates.
    for p in [&mut plane.schedulers[s], &mut plane.managers[m]] {
        p.wait_exit(Duration::from_secs(10)).await.expect("killed");
        p.respawn();
    }

    // 2. A clean stop releases the Lease; another candidate holds it within the retry period.
    let s = plane.leader("kube-scheduler", &plane.schedulers).await;
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-system");
    let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let lease_watch = tokio::spawn({
        let seen = seen.clone();
        let leases = leases.clone();
        async move {
            let cfg = watcher::Config::default().fields("metadata.name=kube-scheduler");
            let mut events = std::pin::pin!(watcher::watcher(leases, cfg));
            while let Some(e) = events.next().await {
                if let Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l)) = e {
                    let holder = l.spec.and_then(|s| s.holder_identity).unwrap_or_default();
                    seen.lock().expect("seen").push((Instant::now(), holder));
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    plane.schedulers[s].signal("TERM");
    let status = plane.schedulers[s]
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("a scheduler asked to stop stops");
    assert!(status.success(), "{status:?}");
    let handover = eventually("another scheduler holds the lease", DEADLINE, || {
        let seen = seen.lock().expect("seen").clone();
        async move {
            let released = seen.iter().find(|(_, h)| h.is_empty())?.0;
            let next = seen
                .iter()
                .find(|(at, h)| *at >= released && !h.is_empty())?
                .0;
            Some(next - released)
        }
    })
    .await;
    lease_watch.abort();
    eprintln!(
        "clean stop: lease released to taken over in {:.3} s",
        handover.as_secs_f64()
    );
    assert!(
        handover < retry,
        "{handover:?} is not within the retry period {retry:?}"
    );
    plane.schedulers[s].respawn();

    // 3. Freeze both leaders past their lease; the others act meanwhile; thawed, the old ones
    //    do nothing more and exit 1.
    let s = plane.leader("kube-scheduler", &plane.schedulers).await;
    let m = plane
        .leader("kube-controller-manager", &plane.managers)
        .await;
    plane.schedulers[s].signal("STOP");
    plane.managers[m].signal("STOP");
    tokio::time::sleep(lease + 2 * retry).await;
    let s2 = plane.leader("kube-scheduler", &plane.schedulers).await;
    let m2 = plane
        .leader("kube-controller-manager", &plane.managers)
        .await;
    assert_ne!(s2, s);
    assert_ne!(m2, m);
    patch_deploy(&deploys, "web", json!({"spec": {"replicas": 4}})).await;
    pods.create(&PostParams::default(), &bare_pod("solo2", "100m"))
        .await
        .expect("creating a pod");
    rolled_out(&deploys, "web").await;
    plane.schedulers[s].signal("CONT");
    plane.managers[m].signal("CONT");
    for proc in [&mut plane.schedulers[s], &mut plane.managers[m]] {
        let status = proc
            .wait_exit(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{} kept running after losing its lease", proc.name));
        assert_eq!(status.code(), Some(1), "{}: {status:?}", proc.name);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    rolled_out(&deploys, "web").await;
    for rs in replica_sets(&c, ns, "web").await {
        let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let name = rs.metadata.name.clone().unwrap_or_default();
        let have = running_pods(&c, ns, "web")
            .await
            .iter()
            .filter(|p| PodState::of(p).owner.as_deref() == Some(name.as_str()))
            .count();
        assert_eq!(
            have as i32, want,
            "ReplicaSet {name} keeps {have} pods for {want}"
        );
    }
    let solo2 = pods.get("solo2").await.expect("solo2");
    assert!(solo2.spec.and_then(|s| s.node_name).is_some());
    history.check_bound_once();
}
