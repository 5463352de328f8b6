//! The simulated nodes against a real API server, given by `NODESIM_TEST_APISERVER`
//! (e.g. `http://127.0.0.1:6443` for a plain-HTTP Mainstay apiserver on a store):
//!
//! ```text
//! NODESIM_TEST_APISERVER=http://127.0.0.1:6443 \
//!   cargo test -p mainstay-nodesim --test live -- --ignored --nocapture
//! ```
//!
//! Ignored by default: this crate may not depend on the apiserver, so it cannot start one.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use mainstay_nodesim::{run, NodesConfig};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition(node: &Node, t: &str) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.clone())
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running API server: NODESIM_TEST_APISERVER=http://host:port"]
async fn nodes_register_beat_and_run_pods() {
    let url =
        std::env::var("NODESIM_TEST_APISERVER").expect("NODESIM_TEST_APISERVER=http://host:port");
    let client =
        kube::Client::try_from(kube::Config::new(url.parse().expect("URL"))).expect("kube client");
    let prefix = format!("nodesim-live-{}-", std::process::id());
    let cfg = NodesConfig {
        count: 3,
        name_prefix: prefix.clone(),
        first_index: 7,
        pod_start_delay: Duration::from_millis(200),
        crash_loop_backoff: Duration::from_secs(1),
        status_report_interval: Duration::from_secs(60),
        write_concurrency: 8,
        ..NodesConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(client.clone(), cfg, async {
        let _ = stopped.await;
    }));

    let nodes: Api<Node> = Api::all(client.clone());
    let names: Vec<String> = (7..10).map(|i| format!("{prefix}{i}")).collect();
    let registered = eventually("three Ready nodes", || {
        let nodes = nodes.clone();
        let names = names.clone();
        async move {
            let mut out = Vec::new();
            for n in &names {
                let node = nodes.get_opt(n).await.ok()??;
                (condition(&node, "Ready").as_deref() == Some("True")).then_some(())?;
                out.push(node);
            }
            Some(out)
        }
    })
    .await;
    let cidrs: BTreeSet<String> = registered
        .iter()
        .map(|n| n.spec.as_ref().unwrap().pod_cidr.clone().unwrap())
        .collect();
    assert_eq!(cidrs.len(), 3, "distinct pod CIDRs: {cidrs:?}");
    let labels = registered[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], names[0]);
    assert_eq!(
        condition(&registered[0], "MemoryPressure").as_deref(),
        Some("False")
    );

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = eventually("the first node's Lease", || {
        let leases = leases.clone();
        let n = names[0].clone();
        async move { leases.get_opt(&n).await.ok()? }
    })
    .await;
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(names[0].as_str()));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    assert!(spec.renew_time.is_some());

    // A pod bound to the first node runs, gets an IP of its CIDR and becomes ready after its
    // probe's initial delay.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let web = format!("{prefix}web");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": web},
        "spec": {"nodeName": names[0], "containers": [{"name": "c", "image": "nginx:1.27",
            "readinessProbe": {"initialDelaySeconds": 1, "tcpSocket": {"port": 80}},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                          "limits": {"cpu": "100m", "memory": "64Mi"}}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let running = eventually("the pod Running and Ready", || {
        let pods = pods.clone();
        let web = web.clone();
        async move {
            let p = pods.get(&web).await.ok()?;
            pod_ready(&p).then_some(p)
        }
    })
    .await;
    if std::env::var_os("NODESIM_TEST_PRINT").is_some() {
        println!("{}", serde_json::to_string_pretty(&running).unwrap());
    }
    let status = running.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.qos_class.as_deref(), Some("Guaranteed"));
    let ip = status.pod_ip.unwrap();
    let cidr = registered[0]
        .spec
        .as_ref()
        .unwrap()
        .pod_cidr
        .clone()
        .unwrap();
    let prefix24 = cidr.trim_end_matches("0/24");
    assert!(ip.starts_with(prefix24), "pod IP {ip} in {cidr}");
    let cs = &status.container_statuses.unwrap()[0];
    assert!(cs
        .container_id
        .as_deref()
        .unwrap()
        .starts_with("mainstay://"));

    // A pod that exits 2 under restartPolicy Never fails.
    let job = format!("{prefix}job");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": job, "annotations": {
            "mainstay.io/run-seconds": "0.5", "mainstay.io/exit-code": "2"}},
        "spec": {"nodeName": names[1], "restartPolicy": "Never",
                 "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create job pod");
    let failed = eventually("the failing pod Failed", || {
        let pods = pods.clone();
        let job = job.clone();
        async move {
            let p = pods.get(&job).await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Failed")).then_some(p)
        }
    })
    .await;
    let term = failed.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(term.exit_code, 2);

    // A graceful delete ends with the node's own final delete.
    pods.delete(&web, &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the deleted pod gone", || {
        let pods = pods.clone();
        let web = web.clone();
        async move { pods.get_opt(&web).await.ok()?.is_none().then_some(()) }
    })
    .await;

    // The node lifecycle controller marks a node Unknown; the node puts it right.
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown",
        "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}]}});
    nodes
        .patch_status(
            &names[2],
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .expect("mark Unknown");
    eventually("the node Ready again", || {
        let nodes = nodes.clone();
        let n = names[2].clone();
        async move {
            let node = nodes.get(&n).await.ok()?;
            (condition(&node, "Ready").as_deref() == Some("True")).then_some(())
        }
    })
    .await;

    // A pod running when the process stops is taken over by the next one (same IP), which
    // registers over the existing Nodes and handles the pod's deletion.
    let keep = format!("{prefix}keep");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": keep},
        "spec": {"nodeName": names[1], "containers": [{"name": "c", "image": "nginx"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let before = eventually("the kept pod Ready", || {
        let pods = pods.clone();
        let keep = keep.clone();
        async move {
            let p = pods.get(&keep).await.ok()?;
            pod_ready(&p).then_some(p)
        }
    })
    .await;
    stop.send(()).expect("stop");
    task.await.expect("join").expect("run ends cleanly");

    let cfg = NodesConfig {
        count: 3,
        name_prefix: prefix.clone(),
        first_index: 7,
        ..NodesConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(client.clone(), cfg, async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pods.get(&keep).await.expect("kept pod");
    let ip = |p: &Pod| p.status.as_ref().and_then(|s| s.pod_ip.clone());
    assert_eq!(ip(&after), ip(&before));
    assert!(pod_ready(&after));
    pods.delete(&keep, &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the kept pod gone", || {
        let pods = pods.clone();
        let keep = keep.clone();
        async move { pods.get_opt(&keep).await.ok()?.is_none().then_some(()) }
    })
    .await;
    stop.send(()).expect("stop");
    task.await.expect("join").expect("second run ends cleanly");
    let _ = pods
        .delete(&job, &DeleteParams::default().grace_period(0))
        .await;
    for n in &names {
        let _ = nodes.delete(n, &DeleteParams::default()).await;
        let _ = leases.delete(n, &DeleteParams::default()).await;
    }
}

/// Counts live heap bytes across threads (the scale test's figures; RSS also holds what the
/// allocator keeps after a peak).
struct Counting;

static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

// SAFETY: defers to the system allocator and only adds an atomic counter.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn heap_kib() -> i64 {
    (LIVE.load(std::sync::atomic::Ordering::Relaxed) / 1024) as i64
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Scale: `NODESIM_SCALE_NODES` nodes (default 1000) and `NODESIM_SCALE_PODS` pods (default
/// 30,000) bound to them round-robin; prints registration time, time until every pod runs,
/// and this process's resident memory per node and per pod (the pod creator's share
/// included, so an upper bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running API server (NODESIM_TEST_APISERVER) and minutes"]
async fn scale() {
    use futures::{StreamExt, TryStreamExt};
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n_nodes = env("NODESIM_SCALE_NODES", 1000);
    let n_pods = env("NODESIM_SCALE_PODS", 30_000);
    let url = std::env::var("NODESIM_TEST_APISERVER").expect("NODESIM_TEST_APISERVER");
    let client =
        kube::Client::try_from(kube::Config::new(url.parse().expect("URL"))).expect("kube client");
    let prefix = format!("scale-{}-", std::process::id());
    let cfg = NodesConfig {
        count: n_nodes,
        name_prefix: prefix.clone(),
        ..NodesConfig::default()
    };
    let rss0 = rss_kib();
    let heap0 = heap_kib();
    let started = std::time::Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(client.clone(), cfg, async {
        let _ = stopped.await;
    }));
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        let list = nodes.list(&Default::default()).await.expect("list nodes");
        let ours = list
            .items
            .iter()
            .filter(|n| {
                n.metadata
                    .name
                    .as_deref()
                    .unwrap_or("")
                    .starts_with(&prefix)
            })
            .count();
        if ours == n_nodes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let registered = started.elapsed();
    // The start-up Events' recorders end once their Events are written; give them, and the
    // last Leases, time before measuring.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rss_nodes = rss_kib();
    let heap_nodes = heap_kib();

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Counts pods that reached Running, from a watch (listing 30,000 pods repeatedly would
    // weigh on the memory measured here).
    let running = tokio::spawn({
        let pods = pods.clone();
        async move {
            use kube::runtime::watcher::{watcher, Config, Event};
            let mut seen = std::collections::HashSet::new();
            let events = watcher(pods, Config::default().labels("app=scale"));
            futures::pin_mut!(events);
            while let Some(ev) = events.next().await {
                if let Ok(Event::Apply(p) | Event::InitApply(p)) = ev {
                    if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                        seen.insert(p.metadata.name.unwrap_or_default());
                        if seen.len() == n_pods {
                            return;
                        }
                    }
                }
            }
        }
    });
    let created = std::time::Instant::now();
    futures::stream::iter(0..n_pods)
        .map(|i| {
            let pods = pods.clone();
            let node = format!("{prefix}{}", i % n_nodes);
            let name = format!("{prefix}p{i}");
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"app": "scale"}},
                    "spec": {"nodeName": node, "containers": [{"name": "c", "image": "pause:3.9",
                        "resources": {"requests": {"cpu": "1m", "memory": "10M"}}}]}
                }))
                .unwrap();
                pods.create(&PostParams::default(), &pod).await.map(drop)
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("create pods");
    let create_time = created.elapsed();
    running.await.expect("running watch");
    let all_running = created.elapsed();
    // Let the last status writes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_pods = rss_kib();
    let heap_pods = heap_kib();
    println!(
        "{n_nodes} nodes registered in {registered:?}; {n_pods} pods created in {create_time:?}, \
         all Running after {all_running:?}"
    );
    println!(
        "resident memory: {rss0} KiB at start, {rss_nodes} KiB with nodes ({:.1} KiB per node), \
         {rss_pods} KiB with pods ({:.2} KiB per pod)",
        (rss_nodes.saturating_sub(rss0)) as f64 / n_nodes as f64,
        (rss_pods.saturating_sub(rss_nodes)) as f64 / n_pods.max(1) as f64
    );
    println!(
        "live heap: {heap0} KiB at start, {heap_nodes} KiB with nodes ({:.1} KiB per node), \
         {heap_pods} KiB with pods ({:.2} KiB per pod)",
        (heap_nodes - heap0) as f64 / n_nodes as f64,
        (heap_pods - heap_nodes) as f64 / n_pods.max(1) as f64
    );
    stop.send(()).expect("stop");
    task.await.expect("join").expect("run ends cleanly");
    // Clean up: pods first (grace 0), then nodes and leases.
    let dp = DeleteParams::default().grace_period(0);
    futures::stream::iter(0..n_pods)
        .map(|i| {
            let pods = pods.clone();
            let dp = dp.clone();
            let name = format!("{prefix}p{i}");
            async move {
                let _ = pods.delete(&name, &dp).await;
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    futures::stream::iter(0..n_nodes)
        .map(|i| {
            let (nodes, leases) = (nodes.clone(), leases.clone());
            let name = format!("{prefix}{i}");
            async move {
                let _ = nodes.delete(&name, &DeleteParams::default()).await;
                let _ = leases.delete(&name, &DeleteParams::default()).await;
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}
